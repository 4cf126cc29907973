"""precise_prefix on the router's request path: a real router process, real Redis, real
simulators publishing KV events over ZMQ on loopback, registered with their feeds.

Which engine holds a prompt is set up by sending the prompt to that engine directly (the
routers never see it, so the approximate index cannot know); the router must still pick it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from controlplane.engines.kv_events_args import precise_from_topology
from controlplane.engines.registry import simulated_hash_scheme
from controlplane.engines.sim import SimServer
from controlplane.local.ports import free_port
from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import EndpointInfo, register_info
from controlplane.spec import Topology
from tests.integration.router.conftest import Cluster

pytestmark = pytest.mark.integration


def start_publishing(
    cluster: Cluster, endpoint_id: str, namespace: str, flavor: str = "vllm"
) -> SimServer:
    """A simulator mimicking `flavor` with KV events on loopback (that engine's block
    hashes), registered with its feed and engine id."""
    pub, replay = free_port(), free_port()
    config = {
        "enable_kv_cache_events": True,
        "publisher": "zmq",
        "endpoint": f"tcp://*:{pub}",
        "replay_endpoint": f"tcp://*:{replay}",
    }
    server = SimServer.start(
        cluster.topo, flavor=flavor, time_scale=50.0, kv_tokens=1600,
        kv_events_config=json.dumps(config),
    )  # fmt: skip
    cluster.engines[endpoint_id] = server
    info = EndpointInfo(
        endpoint_id, server.url, cluster.model, "g", flavor,
        kv_events=(f"tcp://127.0.0.1:{pub}",), kv_replay=(f"tcp://127.0.0.1:{replay}",),
        engine_id=f"{endpoint_id}-1",
    )  # fmt: skip
    register_info(cluster.redis.url, info, namespace)
    return server


def chat(topo: Topology, tag: str, words: int = 300) -> dict[str, Any]:
    text = " ".join(f"{tag}{i}" for i in range(words))
    return {
        "model": topo.served_model_name,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 4,
    }


def routed_to(router: str, payload: dict[str, Any]) -> str:
    reply = httpx.post(f"{router}/v1/chat/completions", json=payload, timeout=30, trust_env=False)
    reply.raise_for_status()
    return reply.headers["x-glmctl-endpoint"]


def metric(url: str, name: str) -> float:
    """Sum of the samples starting with `name` on `url`'s /metrics (a router or an engine)."""
    text = httpx.get(f"{url}/metrics", timeout=10, trust_env=False).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def predicted_blocks(router: str, endpoint: str) -> float:
    return metric(router, f'glmctl_router_kv_predicted_hit_blocks_total{{endpoint="{endpoint}"}}')


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


# Each engine's own count of prompt tokens found in its prefix cache (sglang 0.5.23
# observability/metrics_collector.py; vllm 0.32 v1/metrics/loggers.py).
HITS = {"sglang": "sglang:cached_tokens_total", "vllm": "vllm:prefix_cache_hits_total"}


@pytest.mark.parametrize("flavor", ["sglang", "vllm"])  # SGLang's sha256 pages, vLLM's CBOR
def test_router_routes_a_prefix_to_the_engine_whose_events_announced_it(
    shared_redis: LocalRedis,
    topo: Topology,
    cluster_factory: Callable[..., Cluster],
    flavor: str,
) -> None:
    cluster = cluster_factory(shared_redis, topo)
    ns = f"precise1-{flavor}"
    servers = [start_publishing(cluster, f"p{i}", ns, flavor) for i in range(3)]
    # The plan's settings for this topology simulated in `flavor`.
    scheme = simulated_hash_scheme(flavor)
    settings = replace(precise_from_topology(topo, simulated=True), hash_scheme=scheme)
    router = cluster.router("precise_prefix", namespace=ns, precise=settings.to_json())
    wait_for(lambda: metric(router, 'glmctl_router_kv_index_blocks{endpoint="p') >= 0)
    for holder in (2, 0, 1):
        payload = chat(topo, f"held{holder}")
        httpx.post(f"{servers[holder].url}/v1/chat/completions", json=payload, timeout=30,
                   trust_env=False).raise_for_status()  # fmt: skip
        key = f'glmctl_router_kv_index_blocks{{endpoint="p{holder}"}}'
        wait_for(lambda key=key: metric(router, key) >= 18)  # 300 words: 18+ full blocks
        engine_hits = metric(servers[holder].url, HITS[flavor])
        predicted = predicted_blocks(router, f"p{holder}")
        for _ in range(3):  # whatever the rotation, the holder wins at equal load
            assert routed_to(router, payload) == f"p{holder}"
        # What the router predicted is what the engine found: its own prefix-cache hits.
        engine_hits = metric(servers[holder].url, HITS[flavor]) - engine_hits
        predicted = predicted_blocks(router, f"p{holder}") - predicted
        print(f"p{holder}: predicted {predicted:.0f} blocks, engine hit {engine_hits:.0f} tokens")
        assert predicted * settings.block_size == engine_hits
    assert metric(router, "glmctl_router_kv_fallbacks_total") == 0


def test_router_falls_back_and_counts_it_when_an_endpoint_has_no_feed(
    shared_redis: LocalRedis, topo: Topology, cluster_factory: Callable[..., Cluster]
) -> None:
    cluster = cluster_factory(shared_redis, topo)
    ns = "precise2"
    start_publishing(cluster, "q0", ns)
    cluster.engine("q1", namespace=ns)  # no KV events
    settings = precise_from_topology(topo, simulated=True)
    router = cluster.router("precise_prefix", namespace=ns, precise=settings.to_json())
    wait_for(lambda: routed_to(router, chat(topo, "x", 20)) in ("q0", "q1"))
    assert metric(router, 'glmctl_router_kv_fallbacks_total{reason="no_feed"}') >= 1
    assert metric(router, 'glmctl_router_kv_fallbacks_total{reason="no_tokenizer"}') == 0
