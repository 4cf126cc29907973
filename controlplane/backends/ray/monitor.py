"""The embedded cluster's observe agent: Prometheus, following the live registry.

One detached process (`python -m controlplane.backends.ray.monitor`) per embedded cluster.
It runs Prometheus (local/prometheus_server.py) as its child, rewrites the file-SD targets
and rule files (observe/prometheus.py) from the records in Redis every `POLL_S` (router,
every engine replica, itself), so targets follow scale up/down without a restart, and serves the
deployment metrics of the catalogue's AGENT section on its own `/metrics`.

`ensure(target)` runs after an apply, `stop()` when the last deployment goes;
`prometheus_url()` is what `glmctl status` prints.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from controlplane.backends.ray.records import DeploymentRecord, list_records, replica_records
from controlplane.catalog.gpus import find_gpu
from controlplane.catalog.pd_metrics import PD_LABEL
from controlplane.engines import find_profile
from controlplane.local.prometheus_server import LOOPBACK
from controlplane.local.prometheus_server import binary as prometheus_binary
from controlplane.local.prometheus_server import reload as reload_prometheus
from controlplane.observe import catalog as cat
from controlplane.observe import prometheus as prom
from controlplane.settings import get_settings
from controlplane.spec.models import SloSpec

POLL_S = 1.0
REDIS_GONE_S = 30.0  # the cluster is gone: the agent exits (never outlives it for long)
START_TIMEOUT_S = 40.0

Replicas = Mapping[str, Sequence[dict[str, Any]]]  # deployment -> replica records


def layout(state_dir: Path) -> prom.Layout:
    return prom.Layout(state_dir / "prometheus")


def _address(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.hostname}:{parsed.port}"


def targets(records: Sequence[DeploymentRecord], replicas: Replicas, agent: str) -> list:
    """Scrape targets of every deployment: its router, each engine replica, the agent."""
    out = [prom.ScrapeTarget(agent, cat.JOB_AGENT)]
    for record in records:
        base = {
            cat.DEPLOYMENT: record.name,
            cat.MODEL: record.deployment_plan.group.served_model_name,
        }
        router_labels = {**base, cat.REPLICA: "router", cat.NODE_RANK: "0"}
        out.append(prom.ScrapeTarget(_address(record.router_url), cat.JOB_ROUTER, router_labels))
        # What the engine's profile has Prometheus scrape (None: /metrics).
        engine = find_profile(record.deployment_plan.group.flavor)
        path = engine.prometheus_path if engine is not None else None
        for replica in replicas.get(record.name, ()):
            labels = {**base, cat.REPLICA: replica["replica_id"], cat.NODE_RANK: "0"}
            if replica.get("pd"):  # a PD pool's replica: vLLM's series name no pool themselves
                labels[PD_LABEL] = replica["pd"]
            if path is not None:
                labels["__metrics_path__"] = path
            out.append(prom.ScrapeTarget(_address(replica["url"]), cat.JOB_ENGINE, labels))
    return out


def _gauge(name: str, labels: Mapping[str, str], value: float) -> str:
    text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{text}}} {float(value)!r}"


def agent_metrics(
    records: Sequence[DeploymentRecord],
    replicas: Replicas,
    alive: Callable[[int], bool],
    memory_available: float,
) -> str:
    """The agent's /metrics text (pure: liveness and host memory are passed in)."""
    lines = [_gauge("glmctl_node_memory_available_bytes", {}, memory_available)]
    for record in records:
        group = record.deployment_plan.group
        dep = {cat.DEPLOYMENT: record.name}
        lines.append(_gauge("glmctl_deployment_replicas_wanted", dep, record.replicas))
        mine = replicas.get(record.name, ())
        lines.append(_gauge("glmctl_deployment_replicas_registered", dep, len(mine)))
        gpu = find_gpu(group.gpu_type)
        fraction = record.deployment_plan.capacity.get("engine_mem_fraction")
        if gpu is not None and fraction:
            labels = {**dep, "component": "engine_static"}
            lines.append(
                _gauge("glmctl_plan_gpu_memory_bytes", labels, fraction * gpu.memory_bytes)
            )
        host = record.deployment_plan.capacity.get("host_ram_per_node_bytes")
        if host:
            lines.append(_gauge("glmctl_plan_host_memory_bytes", dep, host))
        for replica in mine:
            for rank in replica.get("ranks", ()):
                if rank.get("host") != LOOPBACK:  # only this host's processes are visible
                    continue
                labels = {
                    **dep,
                    cat.REPLICA: replica["replica_id"],
                    cat.NODE_RANK: str(rank["rank"]),
                }
                lines.append(_gauge("glmctl_replica_rank_up", labels, alive(int(rank["pid"]))))
    return "\n".join(lines) + "\n"


def _pid_alive(pid: int) -> bool:
    from controlplane.backends.ray.cluster import _alive

    return _alive(pid)  # reaps it first when it is our own exited child


def _memory_available() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


class _Agent:
    """The loop's state: what was last read from Redis and rendered."""

    def __init__(self, state_dir: Path, redis_url: str) -> None:
        self.layout = layout(state_dir)
        self.redis_url = redis_url
        self.text = ""
        self.last_ok = time.monotonic()

    def poll(self, agent_address: str) -> bool:
        """One sync; True when rule files changed (Prometheus must reload)."""
        records = list_records(self.redis_url)
        replicas = {r.name: replica_records(self.redis_url, r.name) for r in records}
        self.text = agent_metrics(records, replicas, _pid_alive, _memory_available())
        prom.write_targets(self.layout, targets(records, replicas, agent_address))
        slos = {
            r.name: SloSpec.model_validate(r.deployment_plan.spec.get("slo") or {}) for r in records
        }
        self.last_ok = time.monotonic()
        return prom.write_rules(self.layout, slos)


def _serve(agent: _Agent) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = agent.text.encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(state_dir: Path, redis_url: str, port: int, interval_s: float) -> None:
    """The agent's main loop (runs until SIGTERM or until Redis is gone for a while)."""
    from controlplane.backends.ray.workers import _die_with_parent

    agent = _Agent(state_dir, redis_url)
    server = _serve(agent)
    address = f"{LOOPBACK}:{server.server_address[1]}"
    agent.poll(address)
    process = prom.start(agent.layout, port, interval_s, interval_s, preexec=_die_with_parent)
    state = {
        "pid": os.getpid(),
        "prometheus_url": f"http://{LOOPBACK}:{port}",
        "agent": address,
    }
    agent.layout.state.write_text(json.dumps(state))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.wait(POLL_S) and process.poll() is None:
            try:
                if agent.poll(address):
                    reload_prometheus(process)
            except Exception:  # Redis restarting: keep the last targets a while
                if time.monotonic() - agent.last_ok > REDIS_GONE_S:
                    break
    finally:
        agent.layout.state.unlink(missing_ok=True)
        process.terminate()
        process.wait(timeout=10)
        server.shutdown()


def prometheus_url(state_dir: Path | None = None) -> str | None:
    """The embedded Prometheus' URL while its agent runs, else None."""
    state = prom.read_state(layout(state_dir or get_settings().state_dir))
    if state is None or not _pid_alive(int(state["pid"])):
        return None
    return str(state["prometheus_url"])


def ensure(redis_url: str, state_dir: Path | None = None) -> str:
    """Start the agent (and Prometheus) unless it runs; returns Prometheus' URL."""
    from controlplane.backends.ray.serve_steps import preferred_or_free_port

    settings = get_settings()
    state_dir = state_dir or settings.state_dir
    running = prometheus_url(state_dir)
    if running:
        return running
    prometheus_binary()  # a missing prometheus is a UserError here, before spawning
    root = layout(state_dir).root
    root.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "controlplane.backends.ray.monitor", "--state-dir", str(state_dir),
        "--redis-url", redis_url, "--port", str(preferred_or_free_port(settings.prometheus_port)),
        "--interval", str(settings.prometheus_interval_s),
    ]  # fmt: skip
    log = (root / "agent.log").open("ab")
    process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        url = prometheus_url(state_dir)
        if url:
            return url
        time.sleep(0.2)
    from controlplane.errors import UserError

    raise UserError("the embedded Prometheus did not start.", fix=f"read {root / 'agent.log'}.")


def ensure_quietly(redis_url: str) -> str | None:
    """`ensure`, but a Prometheus that cannot start never fails the apply that called it
    (the reason goes to the agent log; `glmctl status` then shows no Prometheus)."""
    from controlplane.errors import UserError

    try:
        return ensure(redis_url)
    except UserError as exc:
        root = layout(get_settings().state_dir).root
        root.mkdir(parents=True, exist_ok=True)
        with (root / "agent.log").open("a") as log:
            log.write(f"not started: {exc}\n")
        return None


def stop(state_dir: Path | None = None, timeout: float = 15.0) -> bool:
    """Stop the agent and its Prometheus (idempotent); True when one ran."""
    state = prom.read_state(layout(state_dir or get_settings().state_dir))
    if state is None or not _pid_alive(int(state["pid"])):
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    run(args.state_dir, args.redis_url, args.port, args.interval)


if __name__ == "__main__":
    main()


def redis_samples(redis_url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """`glmctl top` without Prometheus: each engine's last load snapshot the routers wrote
    to Redis, as samples keyed like observe.top.QUERIES."""
    from controlplane.store.redis import connection, router_namespace

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    with connection(redis_url, decode_responses=True) as client:
        for record in list_records(redis_url):
            load_key = f"{router_namespace(record.name)}:load"
            loads: dict[str, str] = client.hgetall(load_key)
            for endpoint_id, raw in loads.items():
                load = json.loads(raw)
                labels = {
                    cat.DEPLOYMENT: record.name,
                    cat.REPLICA: endpoint_id.rsplit("/", 1)[-1],
                    cat.NODE_RANK: "0",
                }
                for key, field in (
                    ("running", "running"),
                    ("waiting", "waiting"),
                    ("kv", "kv_usage"),
                ):
                    out.setdefault(key, []).append((labels, float(load.get(field, 0.0))))
    return out
