"""doctor's verdicts from facts (pure): what fails the next apply, what only warns."""

from __future__ import annotations

from dataclasses import replace

from controlplane.catalog.gpus import GIB
from controlplane.doctor.checks import (
    RAY_WITH_SERVE_BYTES,
    Facts,
    Status,
    all_checks,
    embedded_memory_needed,
    version_in,
)

HEALTHY = Facts(
    python=(3, 11, 7),
    extras_missing={"serve": [], "ops": []},
    binaries={"redis-server": "Redis server v=7.0.15", "prometheus": "prometheus 2.42"},
    ray_version="2.60.0",
    ray_requirement=">=2.60,<2.61",
    memory_available=20 * GIB,
    memory_needed=2 * GIB,
    memory_needed_for="t",
    state_dir="/tmp/s",
)


def _statuses(facts: Facts) -> dict[str, Status]:
    return {c.name: c.status for c in all_checks(facts)}


def test_a_healthy_machine_has_no_failure() -> None:
    assert Status.FAIL not in _statuses(HEALTHY).values()


def test_each_missing_piece_fails_or_warns_as_apply_needs_it() -> None:
    assert _statuses(replace(HEALTHY, python=(3, 10, 4)))["python"] is Status.FAIL
    assert (
        _statuses(replace(HEALTHY, extras_missing={"serve": ["ray"]}))["extra serve"] is Status.FAIL
    )
    assert _statuses(replace(HEALTHY, extras_missing={"ops": ["x"]}))["extra ops"] is Status.WARN
    no_redis = replace(HEALTHY, binaries={"redis-server": None, "prometheus": "p"})
    assert _statuses(no_redis)["redis-server"] is Status.FAIL
    assert _statuses(replace(no_redis, redis_url_set=True))["redis-server"] is Status.OK
    no_prom = replace(HEALTHY, binaries={"redis-server": "r", "prometheus": None})
    assert _statuses(no_prom)["prometheus"] is Status.WARN
    assert _statuses(replace(HEALTHY, ray_version="2.49.1"))["ray"] is Status.FAIL
    assert _statuses(replace(HEALTHY, memory_available=GIB))["memory"] is Status.FAIL
    assert _statuses(replace(HEALTHY, ports_taken=[8000]))["ports"] is Status.WARN
    assert _statuses(replace(HEALTHY, state_dir_error="not writable"))["state dir"] is Status.FAIL
    assert _statuses(replace(HEALTHY, cluster="error: no answer"))["cluster"] is Status.FAIL


def test_every_problem_says_what_to_do() -> None:
    broken = replace(HEALTHY, python=(3, 10, 0), memory_available=0, ports_taken=[8000],
                     binaries={"redis-server": None, "prometheus": None})  # fmt: skip
    assert all(
        c.fix for c in all_checks(broken) if c.status is not Status.OK and c.name != "cluster"
    )


def test_memory_grows_with_nodes_ranks_and_routers() -> None:
    one = embedded_memory_needed(1, 1, 0)
    assert one == RAY_WITH_SERVE_BYTES
    assert embedded_memory_needed(2, 1, 0) > one
    assert embedded_memory_needed(1, 4, 0) > embedded_memory_needed(1, 2, 0)
    assert embedded_memory_needed(1, 1, 2) > one


def test_version_specifiers() -> None:
    assert version_in("2.60.0", ">=2.60,<2.61")
    assert version_in("2.60.3", ">=2.60,<2.61")
    assert not version_in("2.61.0", ">=2.60,<2.61")
    assert not version_in("2.59.9", ">=2.60,<2.61")
    assert version_in("1.2.3", "==1.2")
