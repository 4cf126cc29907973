"""The router's PD route against its colocated route, side by side, on simulated engines.

    python -m ops.benchmarks.pd_route_bench [--flavor sglang|vllm] [--concurrency 8]
                                            [--seconds 3] [--rounds 2]

One router; model `colo` is served by one simulated replica, model `pd` by one prefill and
one decode replica of the same flavour (time scale 1000 and a 1e6 Gb/s link: prefill,
decode and the KV transfer are nearly free, so the proxy's own work decides). The router's
policy is prefix_affinity, what the PD route uses to choose the prefill endpoint, so both
routes do the same Redis lookup. Runs
alternate colocated, PD, colocated, PD, ... and each PD run is reported against the mean of
its neighbours, because this machine's speed drifts. The PD route does more per request
(a second upstream request, the body rewritten; vLLM: P answered before D starts), so the
ratios say what that costs at one client and at `--concurrency` clients; `CPU us/req` is
the router process tree's CPU per completed request (/proc), which separates the router's
own cost from the simulated engines' (three processes on the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

from controlplane.engines.sim import SimServer
from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import EndpointInfo, register_info
from controlplane.router.server import RouterProcesses
from controlplane.spec import load_topology
from ops.benchmarks.router_bench import router_pid, tree_cpu
from ops.benchmarks.router_loadgen import RunStats, closed_loop

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "topologies" / "glm45-air-fp8-h200x1.yaml"


def _start(flavor: str, redis: LocalRedis) -> list[SimServer]:
    topo = load_topology(TOPOLOGY)
    common = {"flavor": flavor, "time_scale": 1000.0}
    colo = SimServer.start(topo, served_model_name="colo", **common)  # type: ignore[arg-type]
    p = SimServer.start(topo, served_model_name="pd", pd_role="prefill", pd_link_gbps=1e6,
                        **common)  # type: ignore[arg-type]  # fmt: skip
    d = SimServer.start(topo, served_model_name="pd", pd_role="decode", **common)  # type: ignore[arg-type]
    entries = [
        EndpointInfo("colo0", colo.url, "colo", "g", flavor),
        EndpointInfo("p0", p.url, "pd", "g", flavor, pd="prefill", bootstrap_port=p.port),
        EndpointInfo("d0", d.url, "pd", "g", flavor, pd="decode"),
    ]
    for info in entries:
        register_info(redis.url, info)
    return [colo, p, d]


def _run(url: str, model: str, concurrency: int, seconds: float, pid: int) -> RunStats:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "benchmark the route " * 20}],
        "max_tokens": 10,
        "ignore_eos": True,
        "stream": True,
    }
    before = tree_cpu(pid)
    stats = asyncio.run(closed_loop(model, [url], body, concurrency, seconds, 10**9))
    stats.proxy_cpu = tree_cpu(pid) - before
    return stats


def _cpu_us(stats: RunStats) -> float:
    return stats.proxy_cpu / max(len(stats.latencies), 1) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", choices=("sglang", "vllm"), default="sglang")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    redis = LocalRedis.start()
    engines = _start(args.flavor, redis)
    router = RouterProcesses.start(redis.url, policy="prefix_affinity", scrape_interval=0.5)
    try:
        print(f"PD route vs colocated route, {args.flavor} flavour (simulated engines)")
        print(f"{'clients':>8} {'colo p50 ms':>12} {'pd p50 ms':>10} {'p50 ratio':>10}"
              f" {'colo req/s':>11} {'pd req/s':>9} {'req/s ratio':>12}"
              f" {'colo CPU us/req':>16} {'pd CPU us/req':>14}")  # fmt: skip
        for clients in (1, args.concurrency):
            _report(router.url, clients, args.seconds, args.rounds, router_pid(router))
    finally:
        router.stop()
        for server in engines:
            server.stop()
        redis.stop()


def _report(url: str, clients: int, seconds: float, rounds: int, pid: int) -> None:
    colo = [_run(url, "colo", clients, seconds, pid)]
    pd: list[RunStats] = []
    for _ in range(rounds):
        pd.append(_run(url, "pd", clients, seconds, pid))
        colo.append(_run(url, "colo", clients, seconds, pid))
    for i, run in enumerate(pd):
        around = colo[i : i + 2]
        base_p50 = statistics.mean(r.p50 for r in around)
        base_rate = statistics.mean(r.throughput for r in around)
        print(f"{clients:>8} {base_p50 * 1000:>12.2f} {run.p50 * 1000:>10.2f}"
              f" {run.p50 / base_p50:>10.2f} {base_rate:>11.0f} {run.throughput:>9.0f}"
              f" {run.throughput / base_rate:>12.2f}"
              f" {statistics.mean(_cpu_us(r) for r in around):>16.0f}"
              f" {_cpu_us(run):>14.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
