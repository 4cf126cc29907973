"""Precise (KV events) versus approximate prefix routing versus round robin, on simulators.

    python -m ops.benchmarks.kv_routing_bench [--engines 3] [--groups 12] [--prefix-words 1200]
        [--requests 240] [--clients 12] [--kv-tokens 6000] [--time-scale 10]

Per policy, fresh vLLM-flavoured simulators (the topology's real timing, a small KV pool so
shared prefixes evict each other) publish KV events over ZMQ on loopback. Requests are a
group's long shared prefix plus a unique question; `clients` closed-loop clients send them
through two routers (alternating), each a `RouteContext` + policy in this process with:
- precise_prefix: its own `KvSubscriber` index fed by every engine's events, prompts
  hashed as the engine does (`PreciseLookup`, the simulator's own tokenization);
- prefix_affinity: the router's approximate index (`router/prefix.py` blocks of the
  prompt -> the endpoint last sent them), shared by both routers as Redis shares it;
- round_robin: a counter per router.
Load is the requests in flight per endpoint (shared, as the routers' Redis counts are).
`--outside-share F` sends a share F of the requests straight to a random engine (another
client or gateway the routers do not see): the engines' events report what it cached,
the approximate index cannot.
The routing step runs in the client, not behind the router's HTTP hop: the router's
request path does not call precise_prefix yet (docs/guides/kv-aware-routing.md).
Printed per policy: TTFT p50/p90 (model seconds: wall x time scale), output tokens/s
(model time) and the engines' own prefix-cache hit ratio (hits / queries, in tokens).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from controlplane.engines.sim import SimServer
from controlplane.engines.sim.kv_events import sim_token_ids
from controlplane.local.ports import free_port
from controlplane.router import prefix as approx
from controlplane.router.kv_subscriber import KvFeed, KvSubscriber
from controlplane.router.policies import EndpointView, RouteContext, Tuning, default_policies
from controlplane.router.precise import PreciseLookup
from controlplane.spec import Topology, load_topology
from ops.benchmarks.router_loadgen import RunStats, check_loopback, one

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "topologies" / "glm45-air-fp8-h200x1.yaml"
POLICIES = ("precise_prefix", "prefix_affinity", "round_robin")
HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
GENERATED = "vllm:generation_tokens_total"


@dataclass
class Shared:
    """What the two routers share (Redis in a deployment)."""

    inflight: dict[str, int]
    approx_index: dict[str, str] = field(default_factory=dict)


@dataclass
class Router:
    policy: str
    lookup: PreciseLookup | None
    tuning: Tuning = field(default_factory=Tuning)
    sequence: int = 0


def start_engines(topo: Topology, args: argparse.Namespace) -> list[tuple[SimServer, KvFeed]]:
    engines = []
    for i in range(args.engines):
        pub, replay = free_port("127.0.0.1"), free_port("127.0.0.1")
        config = {"enable_kv_cache_events": True, "endpoint": f"tcp://*:{pub}",
                  "replay_endpoint": f"tcp://*:{replay}"}  # fmt: skip
        server = SimServer.start(
            topo, flavor="vllm", time_scale=args.time_scale, kv_tokens=args.kv_tokens,
            seed=i, kv_events_config=json.dumps(config),
        )  # fmt: skip
        check_loopback(server.url)
        loopback = "tcp://127.0.0.1"
        feed = KvFeed(f"e{i}", f"{loopback}:{pub}", f"{loopback}:{replay}")
        engines.append((server, feed))
    return engines


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


def approximate_match(body: dict[str, Any], shared: Shared) -> tuple[list[str], str | None, int]:
    """The router's approximate lookup: deepest prompt block some router sent somewhere."""
    hashes = approx.block_hashes(approx.prompt_bytes(body))
    for depth in range(len(hashes), 0, -1):
        endpoint = shared.approx_index.get(hashes[depth - 1])
        if endpoint is not None:
            return hashes, endpoint, depth
    return hashes, None, 0


def choose(router: Router, body: dict[str, Any], views: tuple[EndpointView, ...],
           shared: Shared) -> EndpointView:  # fmt: skip
    router.sequence += 1
    hashes, found, depth = approximate_match(body, shared)
    match = router.lookup.match(body, True) if router.lookup else None
    ctx = RouteContext(
        views, sequence=router.sequence, tuning=router.tuning, prefix_endpoint=found,
        prefix_depth=depth, prefix_blocks=len(hashes), kv_runs=match.runs if match else None,
        kv_blocks=match.blocks if match else 0,
    )  # fmt: skip
    chosen = default_policies()[router.policy].choose(ctx).endpoint
    shared.approx_index.update(dict.fromkeys(hashes, chosen.endpoint_id))  # what it learns
    return chosen


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


async def drive(routers: list[Router], urls: dict[str, str], bodies: list[dict[str, Any]],
                args: argparse.Namespace, stats: RunStats) -> None:  # fmt: skip
    """`clients` closed-loop clients; request n goes through router n % 2."""
    shared = Shared(dict.fromkeys(urls, 0))
    queue = list(enumerate(bodies))[::-1]
    model = bodies[0]["model"]
    outside = random.Random(args.seed + 1)

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            n, body = queue.pop()
            views = tuple(
                EndpointView(e, url, model, inflight=shared.inflight[e]) for e, url in urls.items()
            )
            if outside.random() < args.outside_share:  # traffic the routers never see
                target = views[outside.randrange(len(views))]
            else:
                target = choose(routers[n % 2], body, views, shared)
            shared.inflight[target.endpoint_id] += 1
            try:
                url = target.url + "/v1/chat/completions"
                await one(session, url, orjson.dumps(body), {}, stats)
            finally:
                shared.inflight[target.endpoint_id] -= 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(session) for _ in range(args.clients)))


async def run_policy(policy: str, topo: Topology, args: argparse.Namespace) -> dict[str, float]:
    engines = await asyncio.to_thread(start_engines, topo, args)
    servers = [server for server, _ in engines]
    subs = [KvSubscriber(), KvSubscriber()]  # one per router, each with the whole index
    stats = RunStats(policy)
    try:
        for sub in subs:
            for _, feed in engines:
                sub.watch(feed)
                await sub.wait_synced(feed.endpoint_id)
        token_ids = sim_token_ids(topo)
        prefix_w, queue_w, kv_w = args.weights
        tuning = Tuning(prefix_weight=prefix_w, queue_weight=queue_w, kv_weight=kv_w)
        routers = [
            Router(policy, PreciseLookup(sub.index, token_ids) if policy == POLICIES[0] else None,
                   tuning)
            for sub in subs
        ]  # fmt: skip
        started = time.perf_counter()
        urls = {feed.endpoint_id: server.url for server, feed in engines}
        await drive(routers, urls, workload(topo, args), args, stats)
        wall = time.perf_counter() - started
        totals = await asyncio.to_thread(engine_counters, servers)
    finally:
        for sub in subs:
            await sub.close()
        for server in servers:
            server.stop()
    ttfts = [t * args.time_scale for t in stats.ttfts]
    return {
        "ttft_p50_s": stats.percentile(ttfts, 0.5), "ttft_p90_s": stats.percentile(ttfts, 0.9),
        "output_tok_s": totals[GENERATED] / (wall * args.time_scale),
        "hit_ratio": totals[HITS] / max(totals[QUERIES], 1.0), "errors": stats.errors,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ops.benchmarks.kv_routing_bench")
    parser.add_argument("--engines", type=int, default=3)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--prefix-words", type=int, default=1200)
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--kv-tokens", type=int, default=6000)
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=27)
    parser.add_argument(
        "--weights",
        type=float,
        nargs=3,
        default=(1.0, 1.0, 1.0),
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
    args = parser.parse_args(argv)
    topo = load_topology(TOPOLOGY)
    print(f"{args.engines} engines x {args.kv_tokens} KV tokens, {args.groups} groups x "
          f"{args.prefix_words}-word prefixes, {args.requests} requests, {args.clients} clients, "
          f"2 routers, outside share {args.outside_share}")  # fmt: skip
    header = ("policy", "TTFT p50 s", "TTFT p90 s", "out tok/s", "hit ratio", "errors")
    print(f"{header[0]:<16}" + "".join(f"{h:>11}" for h in header[1:]))
    for policy in args.policies:
        r = asyncio.run(run_policy(policy, topo, args))
        values = (r["ttft_p50_s"], r["ttft_p90_s"], r["output_tok_s"], r["hit_ratio"])
        cells = "".join(f"{v:>11.3f}" for v in values)
        print(f"{policy:<16}{cells}{r['errors']:>11.0f}")


if __name__ == "__main__":
    main()
