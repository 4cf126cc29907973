"""Precise (KV events) versus approximate prefix routing versus round robin, on simulators,
through two real router processes.

    python -m ops.benchmarks.kv_routing_bench [--engines 3] [--groups 12] [--prefix-words 1200]
        [--requests 240] [--clients 12] [--kv-tokens 6000] [--time-scale 2] [--repeats 1]

Per policy and repeat: a fresh Redis, fresh vLLM-flavoured simulators (the topology's real
timing, a small KV pool so shared prefixes evict each other) publishing KV events over ZMQ
on loopback and registered with their feeds, and two router processes
(`python -m controlplane.router`, one worker each, `--precise` from the planner's
settings for precise_prefix). Requests are a group's long shared prefix plus a unique
question; `clients` closed-loop clients send request n to router n % 2:
- precise_prefix: each router's own `KvSubscriber` index, prompts hashed as the engine
  does (the simulator's tokenization), load from its in-flight counts and Redis;
- prefix_affinity: the routers' approximate index in Redis (blocks of the prompt -> the
  endpoint last sent them);
- round_robin: a counter per router.
`--outside-share F` sends a share F of the requests straight to a random engine (another
client or gateway the routers do not see): the engines' events report what it cached,
the approximate index cannot.
Policies run interleaved per repeat (precise, affinity, round robin, precise, ...), so slow
phases of the shared machine hit each alike. Printed per run and as medians: TTFT p50/p90
(model seconds: wall x time scale), output tokens/s (model time) and the engines' own
prefix-cache hit ratio (hits / queries, in tokens), and how many repeats precise_prefix
beat prefix_affinity on hit ratio and on TTFT p90.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from controlplane.engines.kv_events_args import precise_from_topology
from controlplane.engines.sim import SimServer
from controlplane.local.ports import free_port
from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import EndpointInfo, register_info
from controlplane.router.server import RouterProcesses
from controlplane.spec import Topology, load_topology
from ops.benchmarks.router_loadgen import RunStats, check_loopback, one

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "topologies" / "glm45-air-fp8-h200x1.yaml"
POLICIES = ("precise_prefix", "prefix_affinity", "round_robin")
HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
GENERATED = "vllm:generation_tokens_total"
KEYS = ("ttft_p50_s", "ttft_p90_s", "output_tok_s", "hit_ratio")


def start_engines(topo: Topology, args: argparse.Namespace, redis: LocalRedis,
                  namespace: str) -> list[SimServer]:  # fmt: skip
    """Simulators publishing KV events, registered with their feeds in `namespace`."""
    servers = []
    for i in range(args.engines):
        pub, replay = free_port("127.0.0.1"), free_port("127.0.0.1")
        config = {"enable_kv_cache_events": True, "endpoint": f"tcp://*:{pub}",
                  "replay_endpoint": f"tcp://*:{replay}"}  # fmt: skip
        server = SimServer.start(
            topo, flavor="vllm", time_scale=args.time_scale, kv_tokens=args.kv_tokens,
            seed=i, kv_events_config=json.dumps(config),
        )  # fmt: skip
        servers.append(server)
        check_loopback(server.url)
        info = EndpointInfo(
            f"e{i}", server.url, topo.served_model_name, "bench", "vllm",
            kv_events=(f"tcp://127.0.0.1:{pub}",), kv_replay=(f"tcp://127.0.0.1:{replay}",),
            engine_id=f"e{i}-{pub}",
        )  # fmt: skip
        register_info(redis.url, info, namespace)
    return servers


def engine_counters(servers: list[SimServer]) -> dict[str, float]:
    """The engines' own prefix-cache and generation counters, summed."""
    totals = dict.fromkeys((HITS, QUERIES, GENERATED), 0.0)
    for server in servers:
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                name = line.split("{")[0].split(" ")[0]
                if name in totals:
                    totals[name] += float(line.split()[-1])
    return totals


def workload(topo: Topology, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Requests: a random group's shared prefix plus a unique question each."""
    rng = random.Random(args.seed)
    prefixes = [" ".join(f"g{g}w{w}" for w in range(args.prefix_words)) for g in range(args.groups)]
    bodies = []
    for n in range(args.requests):
        text = f"{prefixes[rng.randrange(args.groups)]} question {n}"
        bodies.append({"model": topo.served_model_name, "stream": True,
                       "max_tokens": args.max_tokens,
                       "messages": [{"role": "user", "content": text}]})  # fmt: skip
    return bodies


async def drive(routers: list[str], engines: list[str], bodies: list[dict[str, Any]],
                args: argparse.Namespace, stats: RunStats) -> None:  # fmt: skip
    """`clients` closed-loop clients; request n goes through router n % 2 (or, with
    `--outside-share`, sometimes straight to a random engine)."""
    queue = list(enumerate(bodies))[::-1]
    outside = random.Random(args.seed + 1)

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            n, body = queue.pop()
            if outside.random() < args.outside_share:  # traffic the routers never see
                base = engines[outside.randrange(len(engines))]
            else:
                base = routers[n % 2]
            await one(session, base + "/v1/chat/completions", orjson.dumps(body), {}, stats)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(session) for _ in range(args.clients)))


def wait_synced(router: str, engines: int, timeout: float = 20.0) -> None:
    """Until the router follows every engine's feed and has heard from each."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(router + "/metrics", timeout=5) as reply:
            text = reply.read().decode()
        values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                  if line.startswith("glmctl_router_kv_")}  # fmt: skip
        feeds = values.get("glmctl_router_kv_feeds", 0)
        if feeds >= engines and values.get("glmctl_router_kv_event_batches_total", 0) >= engines:
            return  # every engine's first batch (AllBlocksCleared) arrived
        time.sleep(0.1)
    raise SystemExit(f"{router} did not watch the engines' KV feeds in {timeout:.0f} s")


def run_policy(policy: str, topo: Topology, args: argparse.Namespace) -> dict[str, Any]:
    """One run: fresh Redis, engines and two routers; the engines' own counters after."""
    redis = LocalRedis.start()
    namespace = f"kvbench-{policy}"
    servers: list[SimServer] = []
    routers: list[RouterProcesses] = []
    stats = RunStats(policy)
    try:
        servers = start_engines(topo, args, redis, namespace)
        prefix_w, queue_w, kv_w = args.weights
        settings = replace(precise_from_topology(topo, simulated=True),
                           prefix=prefix_w, queue=queue_w, kv=kv_w)  # fmt: skip
        precise = settings.to_json() if policy == POLICIES[0] else ""
        for _ in range(2):
            routers.append(RouterProcesses.start(
                redis.url, policy=policy, namespace=namespace, precise=precise,
                scrape_interval=0.25,
            ))  # fmt: skip
        if precise:
            for router in routers:
                wait_synced(router.url, len(servers))
        started = time.perf_counter()
        urls = [router.url for router in routers]
        asyncio.run(drive(urls, [s.url for s in servers], workload(topo, args), args, stats))
        wall = time.perf_counter() - started
        totals = engine_counters(servers)
        reasons = decision_reasons(routers[0].url)  # its /metrics sums every router's
    finally:
        for router in routers:
            router.stop()
        for server in servers:
            server.stop()
        redis.stop()
    ttfts = [t * args.time_scale for t in stats.ttfts]
    return {
        "ttft_p50_s": stats.percentile(ttfts, 0.5), "ttft_p90_s": stats.percentile(ttfts, 0.9),
        "output_tok_s": totals[GENERATED] / (wall * args.time_scale),
        "hit_ratio": totals[HITS] / max(totals[QUERIES], 1.0), "errors": stats.errors,
        "reasons": reasons,
    }  # fmt: skip


def decision_reasons(router: str) -> dict[str, float]:
    """Decisions by reason (`glmctl_router_decisions_total`; a router's /metrics sums
    what every router of the deployment published)."""
    counts: dict[str, float] = {}
    with urllib.request.urlopen(router + "/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("glmctl_router_decisions_total{"):
                reason = line.split('reason="')[1].split('"')[0]
                counts[reason] = counts.get(reason, 0.0) + float(line.split()[-1])
    return counts


def row(label: str, r: dict[str, Any]) -> str:
    cells = "".join(f"{r[k]:>11.3f}" for k in KEYS)
    return f"{label:<22}{cells}{r.get('errors', 0):>8.0f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ops.benchmarks.kv_routing_bench")
    parser.add_argument("--engines", type=int, default=3)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--prefix-words", type=int, default=1200)
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--kv-tokens", type=int, default=6000)
    parser.add_argument("--time-scale", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=27)
    parser.add_argument(
        "--weights",
        type=float,
        nargs=3,
        default=(1.0, 1.0, 0.0),
        metavar=("PREFIX", "QUEUE", "KV"),
        help="precise_prefix weights",
    )
    parser.add_argument(
        "--outside-share",
        type=float,
        default=0.0,
        help="share of requests sent straight to a random engine, past the routers",
    )
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--reasons", action="store_true", help="print decisions by reason")
    parser.add_argument("--repeats", type=int, default=1, help="runs per policy, interleaved")
    args = parser.parse_args(argv)
    topo = load_topology(TOPOLOGY)
    print(f"{args.engines} engines x {args.kv_tokens} KV tokens, {args.groups} groups x "
          f"{args.prefix_words}-word prefixes, {args.requests} requests, {args.clients} clients, "
          f"2 router processes, time scale {args.time_scale:g}, seed {args.seed}, "
          f"outside share {args.outside_share}, weights {tuple(args.weights)}")  # fmt: skip
    header = ("run", "TTFT p50 s", "TTFT p90 s", "out tok/s", "hit ratio")
    print(f"{header[0]:<22}" + "".join(f"{h:>11}" for h in header[1:]) + f"{'errors':>8}")
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in args.policies}
    for repeat in range(args.repeats):
        for policy in args.policies:
            results[policy].append(run_policy(policy, topo, args))
            result = results[policy][-1]
            print(row(f"{policy} #{repeat + 1}", result), flush=True)
            if args.reasons:
                reasons = sorted(result["reasons"].items(), key=lambda kv: -kv[1])
                print("    " + ", ".join(f"{k} {v:.0f}" for k, v in reasons), flush=True)
    print("median over repeats:")
    for policy, runs in results.items():
        print(row(policy, {k: statistics.median(r[k] for r in runs) for k in KEYS}))
    if {"precise_prefix", "prefix_affinity"} <= set(results):
        pairs = list(zip(results["precise_prefix"], results["prefix_affinity"], strict=True))
        hit = sum(p["hit_ratio"] > a["hit_ratio"] for p, a in pairs)
        p90 = sum(p["ttft_p90_s"] < a["ttft_p90_s"] for p, a in pairs)
        print(f"precise_prefix beat prefix_affinity: hit ratio {hit}/{len(pairs)},"
              f" TTFT p90 {p90}/{len(pairs)}")  # fmt: skip


if __name__ == "__main__":
    main()
