"""Lifecycle events under steady streaming load, one at a time, on the embedded cluster.

`test_lifecycle_events_fail_no_request`: the simulated glm45-fp8 topology with 2 fixed
replicas on one simulated 8 x H200 node, which holds exactly those 2 (so the rolling update
replaces them one at a time). Events: scale down (and back), rolling update of a changed
spec, kill an engine process, kill a rank's worker actor, restart Redis (stopped by its
pid; the keeper starts it again on the same port and password, routers re-seed,
replicas re-publish, the keeper restores deployment records).
`test_lost_node_of_a_two_node_replica`: glm45-bf16 on H100, 2 replicas of 2 nodes each on
4 simulated nodes; the raylet hosting rank 1 of one replica is killed by its pid (a lost
node). The replica leaves rotation and is replaced as a unit; the keeper adds a node
like the lost one.
For each event: no request that had not started streaming fails (it is retried
elsewhere), streams cut by a crash end with an SSE error event and are counted, and the
deployment returns to its full replica count. Each test prints a table of events,
requests, failed, cut, time to recover.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from controlplane.backends.ray.keeper import KeeperState
from controlplane.spec import Topology, load_topology
from tests.integration.autoscale.helpers import SteadyLoad

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
NAME = "chaos-fp8"
SPEC = """
name: chaos-fp8
model: glm-4.5
precision: fp8
gpus: {type: H200, count: 4}
context_length: 32768
max_num_seqs: 8
replicas: 2
router: {policy: least_load}
cluster: {nodes: 1}
"""
BF16_NAME = "chaos-bf16"
BF16_SPEC = """
name: chaos-bf16
model: glm-4.5
precision: bf16
gpus: {type: H100, count: 16, per_node: 8}
context_length: 32768
max_num_seqs: 8
replicas: 2
router: {policy: least_load}
cluster: {nodes: 4}
"""
SOLO_NAME = "solo-fp8"
SOLO_SPEC = """
name: solo-fp8
model: glm-4.5
precision: fp8
gpus: {type: H200, count: 8}
context_length: 32768
max_num_seqs: 8
replicas: 1
router: {policy: least_load}
cluster: {nodes: 1}
"""
REPLICAS = 2
RECOVER_S = 90.0
Row = tuple[str, int, int, int, float]


@pytest.fixture
def spec_dir(tmp_path: Path) -> Iterator[Path]:
    from controlplane.settings import get_settings

    old = os.environ.get("GLMCTL_STATE_DIR")
    os.environ["GLMCTL_STATE_DIR"] = str(tmp_path / "state")
    get_settings.cache_clear()
    try:
        yield tmp_path
    finally:
        from controlplane.backends.ray import manage

        for name in (NAME, BF16_NAME, SOLO_NAME):
            with contextlib.suppress(Exception):  # not applied by this test
                manage.delete(name)
        if old is None:
            os.environ.pop("GLMCTL_STATE_DIR", None)
        else:
            os.environ["GLMCTL_STATE_DIR"] = old
        get_settings.cache_clear()


def _apply(path: Path, text: str) -> object:
    from controlplane.backends.ray import deploy

    path.write_text(text)
    topo: Topology = load_topology(path)
    return deploy.execute_apply(deploy.prepare_apply(topo), topo)


def _keeper() -> KeeperState:
    from controlplane.backends.ray.cluster import embedded_state
    from controlplane.settings import get_settings

    state = embedded_state(get_settings().state_dir)
    assert state is not None
    return state


def _redis_url() -> str:
    """The embedded Redis's URL with its password (status shows it redacted)."""
    return _keeper().redis_url


def _replicas(name: str) -> list[dict[str, object]]:
    """Live replicas of the deployment's current version (none while Redis lost them)."""
    from controlplane.backends.ray.records import read_record, replica_records

    redis_url = _redis_url()
    record = read_record(redis_url, name)
    return replica_records(redis_url, name, record.app) if record else []


def _recovered(client: redis.Redis, name: str, victim: str | None) -> bool:
    """Full count serving again, and the replica an event hit has been replaced."""
    ns = f"glmctl-{name}"
    try:
        serving = client.hlen(f"{ns}:endpoints") - client.hlen(f"{ns}:draining")
        replicas = [str(r["replica_id"]) for r in _replicas(name)]
    except redis.RedisError:  # Redis is restarting
        return False
    return len(replicas) == REPLICAS and serving == REPLICAS and victim not in replicas


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _engine_pid(worker_pid: int) -> int:
    """The engine process a rank worker started (its child running the simulator)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == worker_pid and b"controlplane.engines.sim" in cmdline:
            return int(entry.name)
    raise AssertionError(f"no engine process under worker {worker_pid}")


def _run_events(
    name: str, url: str, model: str, events: list[tuple[str, Callable[[], object]]]
) -> tuple[list[Row], int]:
    """Each event under steady streaming load, one at a time, each until recovered; the
    rows of the table and the most replica records (of any version) seen at once."""
    client = redis.Redis.from_url(_redis_url(), decode_responses=True)
    load = SteadyLoad(url, model, clients=4, max_tokens=48)
    rows: list[Row] = []
    most = [0]
    sampling = threading.Event()

    def sample() -> None:  # replicas of every version: never more than the cluster holds
        while not sampling.is_set():
            with contextlib.suppress(redis.RedisError):  # restarting, or torn down
                most[0] = max(most[0], client.hlen(f"glmctl:replicas:{name}"))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(2.0)
    try:
        for event_name, event in events:
            sent0, failed0, cut0 = load.mark()
            began = time.monotonic()
            hit = event()
            victim = hit if isinstance(hit, str) else None
            while not _recovered(client, name, victim):
                assert time.monotonic() - began < RECOVER_S, f"{event_name}: not recovered"
                time.sleep(0.2)
            recover_s = time.monotonic() - began
            time.sleep(1.0)
            sent, failed, cut = load.mark()
            rows.append((event_name, sent - sent0, failed - failed0, cut - cut0, recover_s))
    finally:
        load.finish()
        sampling.set()
        sampler.join(timeout=5)
        _print_table(rows)
    return rows, most[0]


def _print_table(rows: list[Row]) -> None:
    print(f"\n{'event':<30}{'sent':>6}{'failed':>8}{'cut':>5}{'recover s':>11}")
    for event_name, sent, failed, cut, recover_s in rows:
        print(f"{event_name:<30}{sent:>6}{failed:>8}{cut:>5}{recover_s:>11.1f}")


def _restart_redis() -> None:
    """Stop the embedded Redis by its pid and wait until the keeper started it again (same
    port and password, empty but for the durable keys it restores)."""
    stopped = _keeper().redis_pid
    assert stopped is not None
    os.kill(stopped, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _keeper().redis_pid == stopped:
        assert time.monotonic() < deadline, "the keeper did not restart Redis"
        time.sleep(0.1)


def test_lifecycle_events_fail_no_request(spec_dir: Path) -> None:
    from controlplane.backends.ray import manage

    path = spec_dir / f"{NAME}.yaml"
    record = _apply(path, SPEC)

    def kill(engine: bool) -> str:
        """SIGKILL rank 0's engine process or its worker actor; the replica hit."""
        replica = _replicas(NAME)[0]
        worker = int(replica["ranks"][0]["pid"])  # type: ignore[index]
        os.kill(_engine_pid(worker) if engine else worker, signal.SIGKILL)
        return str(replica["replica_id"])

    def scale_down_and_back() -> None:
        manage.scale(NAME, 1)
        manage.scale(NAME, 2)

    events: list[tuple[str, Callable[[], object]]] = [
        ("scale down and back", scale_down_and_back),
        ("rolling update", lambda: _apply(path, SPEC + "simulation: {seed: 1}\n")),
        ("kill engine process", lambda: kill(engine=True)),
        ("kill worker actor", lambda: kill(engine=False)),
        ("restart Redis", _restart_redis),
    ]
    rows, most = _run_events(NAME, record.router_url, "glm-4.5-fp8", events)  # type: ignore[attr-defined]
    for name, sent, failed, cut, _ in rows:
        assert sent > 0 and failed == 0, name
        assert cut <= (4 if name.startswith("kill") else 0), name
    assert most <= REPLICAS  # the rolling update never held twice the GPUs
    from controlplane.backends.ray.records import read_record

    assert read_record(_redis_url(), NAME) is not None  # restored after the restart


def test_lost_node_of_a_two_node_replica(spec_dir: Path) -> None:
    record = _apply(spec_dir / f"{BF16_NAME}.yaml", BF16_SPEC)

    def stop_raylet_of_rank_1() -> str:
        """SIGKILL the raylet of the node hosting rank 1 of a replica: the worker actor's
        parent, one of the worker nodes' raylets the keeper started (the head's raylet is
        not one: losing the head is losing the cluster). The 4 nodes hold 4 bundles, so at
        most one replica has its rank 1 on the head."""
        workers = set(_keeper().raylet_pids)
        for replica in _replicas(BF16_NAME):
            rank_1 = next(r for r in replica["ranks"] if r["rank"] == 1)  # type: ignore[attr-defined]
            raylet = _parent(int(rank_1["pid"]))
            if raylet in workers:
                assert b"raylet" in Path(f"/proc/{raylet}/cmdline").read_bytes()
                os.kill(raylet, signal.SIGKILL)
                return str(replica["replica_id"])
        raise AssertionError("no replica has its rank 1 on a worker node")

    events: list[tuple[str, Callable[[], object]]] = [
        ("stop raylet of rank 1 (node)", stop_raylet_of_rank_1),
    ]
    model = record.deployment_plan.group.served_model_name  # type: ignore[attr-defined]
    rows, _ = _run_events(BF16_NAME, record.router_url, model, events)  # type: ignore[attr-defined]
    for name, sent, failed, cut, _ in rows:
        assert sent > 0 and failed == 0, name
        assert cut <= 4, name
    assert len(_keeper().raylet_pids) == 3  # the lost worker node was replaced


def test_restarts_stop_after_the_limit_and_apply_clears_them(spec_dir: Path) -> None:
    """MAX_RESTARTS failures in the window (all but the last recorded beforehand, the last
    a killed engine): the replacement starts no engine and the report names the first
    cause; the other replica keeps serving; `apply` of the same spec clears the report and
    the waiting replacement starts."""
    from controlplane.autoscale.drain import MAX_RESTARTS
    from controlplane.autoscale.restarts import failure_entry
    from controlplane.backends.ray import manage
    from controlplane.backends.ray.serve_app import FAILURES_KEY

    path = spec_dir / f"{NAME}.yaml"
    record = _apply(path, SPEC)
    client = redis.Redis.from_url(_redis_url(), decode_responses=True)
    now = time.time()
    for index in range(MAX_RESTARTS - 1):
        entry = failure_entry(now - 60 + index, f"seed {index}")
        client.rpush(FAILURES_KEY.format(name=NAME), entry)
    load = SteadyLoad(record.router_url, "glm-4.5-fp8", clients=2, max_tokens=16)  # type: ignore[attr-defined]
    replica = _replicas(NAME)[0]
    os.kill(_engine_pid(int(replica["ranks"][0]["pid"])), signal.SIGKILL)  # type: ignore[index]
    deadline = time.monotonic() + RECOVER_S

    def report() -> dict[str, object] | None:
        return next(d for d in manage.status()["deployments"] if d["name"] == NAME)[
            "restarts_stopped"
        ]

    while (stopped := report()) is None:
        assert time.monotonic() < deadline, "restarts never stopped"
        time.sleep(1.0)
    assert stopped["failures"] == MAX_RESTARTS and stopped["first_cause"] == "seed 0"
    time.sleep(5.0)  # no replacement starts meanwhile; the other replica serves
    assert [r["replica_id"] for r in _replicas(NAME)] != [replica["replica_id"]]
    assert len(_replicas(NAME)) == REPLICAS - 1
    sent, failed, _ = load.mark()
    assert sent > 0 and failed == 0
    began = time.monotonic()
    _apply(path, SPEC)  # the same spec: clears the report, the waiting replica starts
    while not _recovered(client, NAME, str(replica["replica_id"])):
        assert time.monotonic() - began < RECOVER_S, "not back to full count after apply"
        time.sleep(0.5)
    assert report() is None
    sent, failed = load.finish()
    assert failed == 0
    print(f"\nrestarts stopped, then cleared by apply: back in {time.monotonic() - began:.1f} s")


def test_one_replica_update_without_room_needs_allow_downtime(spec_dir: Path) -> None:
    """One replica filling its only node: `glmctl apply` of a changed spec refuses up front
    (nothing changes), and with --allow-downtime replaces it with a gap the message bounds."""
    import subprocess
    import sys

    from controlplane.backends.ray import deploy
    from controlplane.backends.ray.records import read_record

    path = spec_dir / f"{SOLO_NAME}.yaml"
    record = _apply(path, SOLO_SPEC)
    changed = SOLO_SPEC + "simulation: {seed: 1}\n"
    path.write_text(changed)
    gap = deploy.prepare_apply(load_topology(path)).gap
    assert gap is not None
    glmctl = [sys.executable, "-c", "from controlplane.cli.main import run; run()"]
    refused = subprocess.run([*glmctl, "apply", str(path), "-y"], capture_output=True,
                             text=True, timeout=120, check=False)  # fmt: skip
    output = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0 and "--allow-downtime" in output, output
    assert f"a gap of up to {gap.longest_s:.0f} s" in output
    assert read_record(_redis_url(), SOLO_NAME).version == record.version  # type: ignore[union-attr,attr-defined]
    client = redis.Redis.from_url(_redis_url(), decode_responses=True)
    ns = f"glmctl-{SOLO_NAME}"
    longest, empty_since, watching = [0.0], [None], threading.Event()

    def watch() -> None:  # the longest stretch with no serving endpoint
        while not watching.is_set():
            with contextlib.suppress(redis.RedisError):
                serving = client.hlen(f"{ns}:endpoints") - client.hlen(f"{ns}:draining")
                now = time.monotonic()
                if serving <= 0 and empty_since[0] is None:
                    empty_since[0] = now  # type: ignore[assignment]
                elif serving > 0 and empty_since[0] is not None:
                    longest[0] = max(longest[0], now - empty_since[0])  # type: ignore[operator]
                    empty_since[0] = None
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    allowed = subprocess.run([*glmctl, "apply", str(path), "-y", "--allow-downtime"],
                             capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    watching.set()
    watcher.join(timeout=5)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert read_record(_redis_url(), SOLO_NAME).version != record.version  # type: ignore[union-attr,attr-defined]
    assert 0 < longest[0] < gap.longest_s
    print(f"\none-replica update: no replica served for {longest[0]:.1f} s"
          f" (stated bound {gap.longest_s:.0f} s)")  # fmt: skip
