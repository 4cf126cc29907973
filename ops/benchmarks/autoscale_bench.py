"""glmctl's autoscaling policy against Ray Serve's default request-count policy, one load step.

Both run the same deployment on the embedded cluster: the simulated glm45-fp8 topology,
1 replica, the cluster holds 2. The same step (closed-loop streaming clients, bounded in
time and count) hits the router; a sampler reads every 0.25 s how many replicas Serve is
starting or running, how many serve (registered in Redis), and the requests waiting in
the engines. Printed side by side: reaction time (step -> Serve starts a second replica),
time until it serves, the peak queue, and failed requests.

Ray Serve's default policy runs with the settings the topology used to hand it
(target_ongoing_requests, Serve's default 30 s upscale delay). It counts the requests
that pass through Serve; glmctl's router sends them to the engines directly, so it sees
none: the point this benchmark measures (issue 16).

`python -m ops.benchmarks.autoscale_bench [--clients 20] [--seconds 30]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC = """
name: autoscale-bench
model: glm-4.5
precision: fp8
gpus: {type: H200, count: 4}
context_length: 32768
max_num_seqs: 8
replicas: {min: 1, max: 4}
autoscaling:
  target_ongoing_requests: 4
  upscale_delay_s: 2
  downscale_delay_s: 4
  upscale_cooldown_s: 10
  downscale_cooldown_s: 8
router: {policy: least_load}
cluster: {nodes: 1}
"""
NAME = "autoscale-bench"
SERVE_DEFAULT_UPSCALE_DELAY_S = 30.0  # Ray Serve AutoscalingConfig default (anchors, A)
SERVE_DEFAULT_DOWNSCALE_DELAY_S = 600.0


@dataclass
class StepResult:
    policy: str
    reaction_s: float | None = None  # step -> Serve starts a second replica
    serving_s: float | None = None  # step -> two replicas registered with the routers
    peak_waiting: int = 0
    requests: int = 0
    failed: int = 0
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)


def _serve_replicas(app: str) -> int:
    """Replicas Serve runs or is starting for `app` (not the stopping ones)."""
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None:
        return 0
    return sum(
        n
        for d in status.deployments.values()
        for state, n in d.replica_states.items()
        if not str(state).endswith("STOPPING")
    )


def _sample(
    redis_url: str, app: str, result: StepResult, began: float, stop: threading.Event
) -> None:
    import json

    from controlplane.store.redis import REPLICAS_KEY, sync_client

    client = sync_client(redis_url, decode_responses=True)
    while not stop.is_set():
        now = time.monotonic() - began
        started = _serve_replicas(app)
        serving = client.hlen(REPLICAS_KEY.format(name=NAME))
        waiting = sum(
            int(json.loads(v).get("waiting", 0))
            for v in client.hgetall(f"glmctl-{NAME}:load").values()
        )
        result.samples.append((now, started, serving, waiting))
        result.peak_waiting = max(result.peak_waiting, waiting)
        if result.reaction_s is None and started > 1:
            result.reaction_s = now
        if result.serving_s is None and serving > 1:
            result.serving_s = now
        time.sleep(0.25)
    client.close()


def run_step(policy: str, record: Any, redis_url: str, clients: int, seconds: float) -> StepResult:
    from ops.benchmarks.router_loadgen import closed_loop

    result = StepResult(policy)
    stop = threading.Event()
    began = time.monotonic()
    sampler = threading.Thread(target=_sample, args=(redis_url, record.app, result, began, stop))
    sampler.start()
    body = {
        "model": "glm-4.5-fp8",
        "messages": [{"role": "user", "content": "load step"}],
        "max_tokens": 64,
        "stream": True,
    }
    stats = asyncio.run(
        closed_loop(policy, [record.router_url], body, clients, seconds, max_requests=20_000)
    )
    stop.set()
    sampler.join()
    result.requests, result.failed = len(stats.latencies) + stats.errors, stats.errors
    return result


def use_serve_default(record: Any, redis_url: str, log_dir: str) -> None:
    """Redeploy the same app (same replicas, same arguments) under Serve's default policy."""
    from ray import serve

    from controlplane.backends.ray.apps import engine_options
    from controlplane.backends.ray.serve_app import EngineGroup

    plan = record.deployment_plan
    auto = plan.group.autoscaling
    options = engine_options(plan, redis_url=redis_url)
    options["autoscaling_config"] = {
        "min_replicas": auto.min_replicas,
        "max_replicas": auto.max_replicas,
        "initial_replicas": 1,
        "target_ongoing_requests": auto.target_ongoing_requests,
        "upscale_delay_s": SERVE_DEFAULT_UPSCALE_DELAY_S,
        "downscale_delay_s": SERVE_DEFAULT_DOWNSCALE_DELAY_S,
    }
    built = serve.deployment(EngineGroup).options(**options)  # type: ignore[attr-defined]
    app = built.bind(plan.to_data(), redis_url, record.app, log_dir)
    serve._run(app, name=record.app, route_prefix=None, _blocking=True)


def wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def _fmt(value: float | None, seconds: float) -> str:
    return f"{value:.1f} s" if value is not None else f"none in {seconds:.0f} s"


def _row(cells: tuple[str, ...]) -> None:
    widths = (15, 16, 16, 14, 10, 8)
    first, *rest = cells
    print(
        f"{first:<{widths[0]}}"
        + "".join(f"{c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="glmctl-autoscale-bench-"))
    os.environ["GLMCTL_STATE_DIR"] = str(state)
    from controlplane.backends.ray import deploy, manage
    from controlplane.spec import load_topology

    path = state / f"{NAME}.yaml"
    path.write_text(SPEC)
    topology = load_topology(path)
    try:
        prepared = deploy.prepare_apply(topology)
        record = deploy.execute_apply(prepared, topology)
        redis_url = prepared.target.redis_url
        ours = run_step("glmctl", record, redis_url, args.clients, args.seconds)
        wait_for(lambda: _serve_replicas(record.app) == 1, 90)  # back to one after the step
        use_serve_default(record, redis_url, str(state / "logs"))
        theirs = run_step("serve-default", record, redis_url, args.clients, args.seconds)
    finally:
        manage.delete(NAME)
    print(f"\nload step: {args.clients} streaming clients, {args.seconds:.0f} s, 1 -> 2 replicas")
    _row(("policy", "reaction", "2nd serving", "peak waiting", "requests", "failed"))
    for r in (ours, theirs):
        _row((r.policy, _fmt(r.reaction_s, args.seconds), _fmt(r.serving_s, args.seconds),
              str(r.peak_waiting), str(r.requests), str(r.failed)))  # fmt: skip
    if ours.requests and theirs.requests:
        ratio = ours.requests / theirs.requests
        print(f"requests served in the step, glmctl / serve-default: {ratio:.2f}x")
    return 0 if ours.reaction_s is not None and ours.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
