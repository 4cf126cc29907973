"""Router throughput and added latency against a direct connection and against sglang-router.

    python -m ops.benchmarks.router_bench [--concurrency 32] [--seconds 4] [--rounds 2]
                                          [--workers 1] [--pin] [--no-sglang]

Two simulated engines (time scale 1000: generation is nearly free, so the proxies' CPU
decides) serve 10-token SSE streams. Every proxied run is bracketed by direct runs
(direct, glmctl round_robin, direct, glmctl prefix_affinity, direct, sglang-router,
direct, ...) and reported against the mean of its two neighbours, because this machine's
speed drifts (../shared/reference/router-baselines.md). Targets (issue 27, checked at the
end of each run): at one client, added p50 at most 0.3 ms and added p99 at most 1 ms; at
`--concurrency` clients, throughput at least 0.75x direct. The second table (one client)
is the added latency without queueing; for scale, a bare uvicorn app that answers the same
10-chunk stream with no upstream at all took 0.65 ms per request on this machine. The
`proxy CPU us/req` column is the CPU the proxy's process tree used per completed request
(/proc; includes its background work, so it reads high at one client): it is far less
noisy than the latency columns when the machine is shared. `--pin` runs the routers on the
last CPU and everything else (load generator, engines, Redis) on the others, in direct and
proxied runs alike, so both get the same CPUs for the clients and engines and the router's
hop is measured without taking CPU from them (as when it has cores of its own).

sglang-router is run from its own venv (~/.cache/glmctl/bench-venv, created with
`python -m venv ... && pip install sglang-router` when missing) with a local stub
tokenizer, so it never reaches for the network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from controlplane.engines.sim import SimServer
from controlplane.local.ports import free_port, wait_port
from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import register_endpoint
from controlplane.router.server import RouterProcesses
from controlplane.spec import load_topology
from ops.benchmarks.router_loadgen import RunStats, bracketed, closed_loop

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "topologies" / "glm45-air-fp8-h200x1.yaml"
BENCH_VENV = Path.home() / ".cache" / "glmctl" / "bench-venv"
STUB_TOKENIZER: dict[str, object] = {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
    "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
    "decoder": None,
    "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"},
}  # fmt: skip


def ensure_sglang_router() -> Path | None:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import sglang_router"], capture_output=True)
    if probe.returncode != 0:
        install = subprocess.run([str(python), "-m", "pip", "install", "-q", "sglang-router"])
        if install.returncode != 0:
            return None
    return python


def start_sglang_router(
    python: Path, workers: list[str], model: str
) -> tuple[subprocess.Popen[bytes], str]:
    folder = Path(tempfile.mkdtemp(prefix="glmctl-sgtok-"))
    tokenizer = folder / model  # the workers report `model` as their model path
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_text(json.dumps(STUB_TOKENIZER))
    (tokenizer / "tokenizer_config.json").write_text(
        '{"tokenizer_class": "PreTrainedTokenizerFast"}'
    )
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen(
        [str(python), "-m", "sglang_router.launch_router", "--host", "127.0.0.1",
         "--port", str(port), "--worker-urls", *workers, "--policy", "round_robin",
         "--tokenizer-path", str(tokenizer), "--log-level", "error"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    if not wait_port(port, timeout=30):
        process.terminate()
        raise SystemExit("sglang-router did not start")
    time.sleep(2.0)  # it registers the workers after binding
    return process, url


def tree_cpu(pid: int) -> float:
    """CPU seconds a process and its descendants have used so far (Linux /proc; 0 if none)."""
    total, pending = 0.0, [pid] if pid else []
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pending.extend(int(child) for child in children)
    return total


def router_pid(router: RouterProcesses) -> int:
    return router.process.pid if router.process is not None else 0


@contextmanager
def cpus(allowed: set[int] | None) -> Iterator[None]:
    """Processes started inside run on `allowed` CPUs only (inherited affinity; None: no
    change). `--pin` uses it to give the routers their own core, so that direct and
    proxied runs get the same CPUs for the load generator and the engines."""
    if allowed is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, allowed)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def split_cpus(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(load generator and engines, routers): the last CPU for the routers, the rest for
    the others; (None, None) without `pin` or with a single CPU."""
    available = sorted(os.sched_getaffinity(0))
    if not pin or len(available) < 2:
        return None, None
    return set(available[:-1]), {available[-1]}


TARGET_RATIO, TARGET_P50_MS, TARGET_P99_MS = 0.75, 0.3, 1.0
Row = tuple[float, float, float, float, float]  # x direct, added p50, added p99, req/s, CPU


def report(results: list[RunStats]) -> dict[str, Row]:
    """Each proxied run against the mean of its two direct neighbours; returns each
    path's means."""
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {}
    for run in results:
        print(f"  {run.name:<24} {run.throughput:7.0f} req/s  p50 {run.p50 * 1000:6.2f} ms"
              f"  p99 {run.p99 * 1000:7.2f} ms  errors {run.errors}")  # fmt: skip
    for index in range(1, len(results) - 1, 2):
        before, run, after = results[index - 1], results[index], results[index + 1]
        base_rps = (before.throughput + after.throughput) / 2
        base_p50 = (before.p50 + after.p50) / 2
        base_p99 = (before.p99 + after.p99) / 2
        rows.setdefault(run.name, []).append((
            run.throughput / base_rps, (run.p50 - base_p50) * 1000, (run.p99 - base_p99) * 1000,
            run.throughput, run.proxy_cpu / max(len(run.latencies), 1) * 1e6,
        ))  # fmt: skip
    print(f"\n{'path':<24}{'x direct':>10}{'added p50 ms':>14}{'added p99 ms':>14}{'req/s':>9}"
          f"{'errors':>8}{'proxy CPU us/req':>18}")  # fmt: skip
    means: dict[str, Row] = {}
    for name, values in rows.items():
        count = len(values)
        ratio, p50, p99, rps, cpu = (sum(v[i] for v in values) / count for i in range(5))
        errors = sum(r.errors for r in results if r.name == name)
        means[name] = (ratio, p50, p99, rps, cpu)
        print(f"{name:<24}{ratio:>10.2f}{p50:>14.2f}{p99:>14.2f}{rps:>9.0f}{errors:>8}{cpu:>18.0f}")
    direct_errors = sum(r.errors for r in results if r.name == "direct")
    print(f"{'direct':<24}{1.0:>10.2f}{'':>14}{'':>14}{'':>9}{direct_errors:>8}")
    if "sglang-router" in means:
        for name in (n for n in means if n.startswith("glmctl")):
            share = means[name][0] / means["sglang-router"][0]
            print(f"{name} / sglang-router throughput: {share:.2f}")
    return means


def verdict(loaded: dict[str, Row], single: dict[str, Row]) -> None:
    """Print, per glmctl path, whether each issue-27 target is met, else by how much not."""

    def check(label: str, value: float, limit: float, at_least: bool) -> str:
        met = value >= limit if at_least else value <= limit
        return f"{label} {value:.2f} ({'met' if met else f'missed by {abs(value - limit):.2f}'})"

    print("\ntargets (issue 27): x direct >= 0.75 under load; one client: added p50 <= 0.3 ms,"
          " added p99 <= 1 ms")  # fmt: skip
    for name in (n for n in loaded if n.startswith("glmctl") and n in single):
        parts = (
            check("x direct", loaded[name][0], TARGET_RATIO, True),
            check("p50 ms", single[name][1], TARGET_P50_MS, False),
            check("p99 ms", single[name][2], TARGET_P99_MS, False),
        )
        print(f"  {name:<24}" + "; ".join(parts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ops.benchmarks.router_bench")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=50_000)
    # One router process: on 2 cores shared with the load generator and two engines, a
    # second process cost the router ~30% more CPU per request (118 vs 152 us, 5 of 5
    # alternating runs; docs/guides/router-performance.md) and added no throughput.
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-sglang", action="store_true")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="routers (and sglang-router) on the last CPU, load generator, engines and Redis"
        " on the others, in direct and proxied runs alike (default: all share every CPU)",
    )
    args = parser.parse_args(argv)
    topo = load_topology(TOPOLOGY)
    clients_cpus, router_cpus = split_cpus(args.pin)
    if clients_cpus is not None:
        os.sched_setaffinity(0, clients_cpus)
    redis = LocalRedis.start()
    sims = [SimServer.start(topo, time_scale=1000, flavor="vllm") for _ in range(2)]
    routers: list[RouterProcesses] = []
    sglang: subprocess.Popen[bytes] | None = None
    try:
        for index, sim in enumerate(sims):
            register_endpoint(redis.url, f"e{index}", sim.url, topo.served_model_name)
        with cpus(router_cpus):
            for policy in ("round_robin", "prefix_affinity"):
                routers.append(
                    RouterProcesses.start(redis.url, workers=args.workers, policy=policy)
                )
        body = {
            "model": topo.served_model_name, "stream": True, "max_tokens": 10,
            "ignore_eos": True, "messages": [{"role": "user", "content": "hello " * 20}],
        }  # fmt: skip

        def run(
            name: str, urls: list[str], clients: int = 0, pid: int = 0
        ) -> Callable[[], RunStats]:
            def once() -> RunStats:
                cpu_before = tree_cpu(pid)
                stats = asyncio.run(
                    closed_loop(
                        name,
                        urls,
                        body,
                        clients or args.concurrency,
                        args.seconds,
                        args.max_requests,
                    )
                )
                stats.proxy_cpu = tree_cpu(pid) - cpu_before
                return stats

            return once  # fmt: skip

        targets = [
            ("direct", [s.url for s in sims], 0),
            ("glmctl round_robin", [routers[0].url], router_pid(routers[0])),
            ("glmctl prefix_affinity", [routers[1].url], router_pid(routers[1])),
        ]
        python = None if args.no_sglang else ensure_sglang_router()
        if python is not None:
            with cpus(router_cpus):
                sglang, sglang_url = start_sglang_router(python, [s.url for s in sims],
                                                         topo.served_model_name)  # fmt: skip
            targets.append(("sglang-router", [sglang_url], sglang.pid))
        runs = [(name, run(name, urls, 0, pid)) for name, urls, pid in targets]
        for _name, warm in runs:
            warm()  # warm-up: connections, caches
        print(
            f"throughput: concurrency {args.concurrency}, {args.seconds:.0f} s runs,"
            f" {args.rounds} rounds, {args.workers} glmctl workers, {os.cpu_count()} cores"
            + (f", routers pinned to CPU {sorted(router_cpus)}" if router_cpus else "")
        )
        loaded = report(bracketed(runs, args.rounds))
        print("\nadded latency: one client at a time (no queueing)")
        single = [(name, run(name, urls, 1, pid)) for name, urls, pid in targets]
        verdict(loaded, report(bracketed(single, args.rounds)))
    finally:
        if sglang is not None:
            sglang.terminate()
            sglang.wait(10)
        for router in routers:
            router.stop()
        for sim in sims:
            sim.stop()
        redis.stop()


if __name__ == "__main__":
    main()
