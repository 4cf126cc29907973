"""KV events end to end: real simulators publishing vLLM's wire format over ZMQ on
loopback, the router's subscriber and index, and precise_prefix choosing the holder.

Expected block counts come from the engine's own `usage.prompt_tokens` (full blocks of 16),
evictions from the engine's own prefix-cache counters, never from the code under test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from controlplane.engines.sim import SimServer
from controlplane.engines.sim.kv_events import sim_token_ids
from controlplane.local.ports import free_port
from controlplane.router import kv_hash
from controlplane.router.kv_subscriber import KvFeed, KvSubscriber
from controlplane.router.policies import EndpointView, RouteContext, precise_prefix
from controlplane.router.precise import PreciseLookup
from controlplane.spec import Topology

pytestmark = pytest.mark.integration
BLOCK = 16
KV_TOKENS = 1600  # 100 blocks: a few long prompts evict each other


@dataclass
class Engine:
    name: str
    server: SimServer
    feed: KvFeed


def sim(topo: Topology, config: dict[str, Any]) -> SimServer:
    events = json.dumps(config)
    return SimServer.start(
        topo, flavor="vllm", time_scale=50.0, kv_tokens=KV_TOKENS, kv_events_config=events
    )


def start_engine(topo: Topology, name: str) -> Engine:
    pub, replay = free_port("127.0.0.1"), free_port("127.0.0.1")
    config = {
        "enable_kv_cache_events": True,
        "publisher": "zmq",
        "endpoint": f"tcp://*:{pub}",  # `*`: bound, as vLLM does
        "replay_endpoint": f"tcp://*:{replay}",
        "topic": f"kv@{name}",
    }
    server = sim(topo, config)
    feed = KvFeed(name, f"tcp://127.0.0.1:{pub}", f"tcp://127.0.0.1:{replay}", topic=f"kv@{name}")
    return Engine(name, server, feed)


@pytest.fixture(scope="module")
def engines(topo: Topology) -> Iterator[list[Engine]]:
    started = [start_engine(topo, name) for name in ("e0", "e1")]
    try:
        yield started
    finally:
        for engine in started:
            engine.server.stop()


def body(topo: Topology, tag: str, words: int = 300) -> dict[str, Any]:
    text = " ".join(f"{tag}{i}" for i in range(words))
    return {
        "model": topo.served_model_name,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 4,
    }


async def send(engine: Engine, payload: dict[str, Any]) -> int:
    """POST a chat request; the engine's own count of the prompt's full blocks."""
    async with httpx.AsyncClient(trust_env=False) as client:
        reply = await client.post(
            f"{engine.server.url}/v1/chat/completions", json=payload, timeout=30
        )
    reply.raise_for_status()
    return int(reply.json()["usage"]["prompt_tokens"]) // BLOCK


async def prefix_hits(engine: Engine) -> float:
    async with httpx.AsyncClient(trust_env=False) as client:
        text = (await client.get(f"{engine.server.url}/metrics", timeout=10)).text
    for line in text.splitlines():
        if line.startswith("vllm:prefix_cache_hits_total"):
            return float(line.split()[-1])
    raise AssertionError("no vllm:prefix_cache_hits_total in /metrics")


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def chain(topo: Topology, payload: dict[str, Any]) -> list[int]:
    ids = sim_token_ids(topo)(payload, True)
    assert ids is not None
    return kv_hash.block_keys(ids)


async def subscribed(engines: list[Engine], sub: KvSubscriber | None = None) -> KvSubscriber:
    sub = sub or KvSubscriber()
    for engine in engines:
        sub.watch(engine.feed)
    for engine in engines:
        await sub.wait_synced(engine.name)
    return sub


async def test_index_learns_blocks_and_forgets_evicted_ones(
    topo: Topology, engines: list[Engine]
) -> None:
    e0 = engines[0]
    sub = await subscribed([e0])
    try:
        first = body(topo, "learn")
        blocks = await send(e0, first)
        keys = chain(topo, first)
        assert len(keys) == blocks
        await until(lambda: sub.index.runs(keys).get("e0") == blocks)
        # Fill the 100-block pool with other prompts: `learn`'s blocks are evicted.
        for n in range(6):
            await send(e0, body(topo, f"filler{n}"))
        await until(lambda: "e0" not in sub.index.runs(keys))
        before = await prefix_hits(e0)
        await send(e0, first)  # the engine agrees: nothing of it was cached any more
        assert await prefix_hits(e0) == before
        await until(lambda: sub.index.runs(keys).get("e0") == blocks)  # stored again
        assert sub.stats.resyncs == 0 and sub.stats.bad_frames == 0
    finally:
        await sub.close()


class LossySubscriber(KvSubscriber):
    """Loses the next live frame of an endpoint, as a network or a slow reader would."""

    def __init__(self) -> None:
        super().__init__()
        self.drop: set[str] = set()

    def _on_live(self, feed: KvFeed, frames: list[bytes]) -> None:
        if feed.endpoint_id in self.drop:
            self.drop.discard(feed.endpoint_id)
            return
        super()._on_live(feed, frames)


async def test_a_gap_in_sequence_numbers_is_repaired_through_replay(
    topo: Topology, engines: list[Engine]
) -> None:
    e1 = engines[1]
    sub = await subscribed([e1], LossySubscriber())
    try:
        lost, later = body(topo, "lost"), body(topo, "later")
        assert isinstance(sub, LossySubscriber)
        sub.drop = {"e1"}
        lost_blocks = await send(e1, lost)
        await asyncio.sleep(0.2)
        assert "e1" not in sub.index.runs(chain(topo, lost))  # its batch was dropped
        later_blocks = await send(e1, later)  # the next batch reveals the gap
        await until(lambda: sub.index.runs(chain(topo, later)).get("e1") == later_blocks)
        assert sub.index.runs(chain(topo, lost)).get("e1") == lost_blocks  # replayed
        assert (sub.stats.resyncs, sub.stats.resync_failures) == (1, 0)
    finally:
        await sub.close()


async def test_a_restarted_router_relearns_from_replay_and_routes_to_the_holder(
    topo: Topology, engines: list[Engine]
) -> None:
    e1 = engines[1]
    shared = body(topo, "shared", words=400)
    blocks = await send(e1, shared)
    first = await subscribed(engines)  # joins after the blocks were stored
    try:
        await until(lambda: first.index.runs(chain(topo, shared)).get("e1") == blocks)
        lookup = PreciseLookup(first.index, sim_token_ids(topo))
        match = lookup.match(shared, True)
        assert match is not None
        views = tuple(EndpointView(e.name, e.server.url, topo.served_model_name) for e in engines)
        for sequence in range(4):  # whatever the rotation, the holder wins at equal load
            ctx = RouteContext(views, sequence=sequence, kv_runs=match.runs, kv_blocks=match.blocks)
            decision = precise_prefix(ctx)
            assert (decision.endpoint.endpoint_id, decision.reason) == ("e1", "precise_hit")
        before = await prefix_hits(e1)
        await send(e1, shared)
        assert await prefix_hits(e1) - before >= (blocks - 1) * BLOCK  # the engine agrees
    finally:
        await first.close()


async def test_an_engine_restart_drops_its_blocks(topo: Topology) -> None:
    engine = start_engine(topo, "e9")
    sub = await subscribed([engine])
    try:
        payload = body(topo, "restart")
        blocks = await send(engine, payload)
        await until(lambda: sub.index.blocks_of("e9") == blocks)
        engine.server.stop()
        replacement = await asyncio.to_thread(_restart, topo, engine)
        engine = replacement
        after = body(topo, "after")
        after_blocks = await send(engine, after)  # the new process's first stored blocks
        old_chain, new_chain = chain(topo, payload), chain(topo, after)
        # By the blocks themselves, not their count: both prompts fill as many blocks, so a
        # count alone is met before the restart is seen.
        await until(lambda: sub.index.runs(new_chain).get("e9") == after_blocks)
        await until(lambda: "e9" not in sub.index.runs(old_chain))  # the old blocks are gone
        assert sub.index.blocks_of("e9") == after_blocks
        assert sub.stats.restarts == 1
    finally:
        await sub.close()
        engine.server.stop()


def _restart(topo: Topology, engine: Engine) -> Engine:
    """A new simulator process on the same event ports (a replaced engine)."""
    pub = int(engine.feed.publisher.rsplit(":", 1)[1])
    replay = int((engine.feed.replay or "").rsplit(":", 1)[1])
    config = {
        "enable_kv_cache_events": True,
        "endpoint": f"tcp://*:{pub}",
        "replay_endpoint": f"tcp://*:{replay}",
        "topic": engine.feed.topic,
    }
    return Engine(engine.name, sim(topo, config), engine.feed)
