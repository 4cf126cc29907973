"""A router scraping a simulated TensorRT-LLM replica sees its load, and a drain waits.

The simulator answers `/metrics` as trtllm-serve does (a JSON list of iteration stats,
drained by each read); the router reads it under the `trtllm` flavour, and the engine-side
drain reads the same endpoint while the router keeps scraping it (the two readers split
the queue, as they would on a real engine). The second test turns on trtllm-serve 1.2's
long poll (`/metrics` answers only after 2 s without a new iteration).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

from controlplane.engines import EngineProcess, LaunchCommand
from controlplane.engines.sim import SimServer
from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import register_endpoint
from controlplane.router.server import RouterProcesses
from controlplane.spec import Topology, load_topology
from tests.integration.router.conftest import REPO
from tests.integration.router.helpers import chat_body

pytestmark = pytest.mark.integration
TOPOLOGY = REPO / "topologies" / "chatglm2-6b-trtllm-int8-l40sx1.yaml"
STREAMS = 4
TRTLLM_STATS_WAIT_S = 2.0  # trtllm-serve's get_stats_async(2)


def _record(redis_url: str, kind: str, endpoint_id: str = "t") -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.hget(f"glmctl:{kind}", endpoint_id)
    finally:
        client.close()
    return json.loads(raw) if raw else {}


def _wait_for(check: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.1)
        value = check()
    return value


@contextmanager
def _replica(redis_url: str, **options: Any) -> Iterator[tuple[Topology, SimServer, str]]:
    """A simulated trtllm replica registered with a router (yields topology, engine,
    router URL) once the router routes to it."""
    topo = load_topology(TOPOLOGY)
    engine = SimServer.start(topo, **options)  # the spec's flavour
    router = RouterProcesses.start(redis_url, workers=1, scrape_interval=0.3)
    try:
        register_endpoint(redis_url, "t", engine.url, topo.served_model_name, "g", "trtllm")

        def routed() -> bool:
            models = httpx.get(router.url + "/v1/models", timeout=5).json().get("data", [])
            return any(m.get("id") == topo.served_model_name for m in models)

        assert _wait_for(routed, 10), "the router never picked up the endpoint"
        yield topo, engine, router.url
    finally:
        router.stop()
        engine.stop()


@contextmanager
def _streams(router_url: str, model: str) -> Iterator[httpx.Client]:
    """STREAMS long generations open through the router while the block runs."""
    body = chat_body(model, "hold " * 200, max_tokens=3000, ignore_eos=True, stream=True)
    client = httpx.Client(timeout=30)
    opened = []
    try:
        for _ in range(STREAMS):
            stream = client.stream("POST", router_url + "/v1/chat/completions", json=body)
            response = stream.__enter__()
            opened.append(stream)
            assert response.status_code == 200, response.read()
        yield client
    finally:
        for stream in opened:
            stream.__exit__(None, None, None)
        client.close()


def _drainer(engine: SimServer) -> EngineProcess:
    assert engine.process is not None
    return EngineProcess(LaunchCommand(("sim",)), engine.url, process=engine.process)


def test_router_sees_trtllm_load_and_drain_waits_for_it(redis_server: LocalRedis) -> None:
    with _replica(redis_server.url) as (topo, engine, router_url):
        assert topo.spec.simulation.flavor is not None
        assert topo.spec.simulation.flavor.value == "trtllm"  # what trtllm replicas simulate
        assert httpx.get(engine.url + "/metrics").json() == []  # idle: no iteration yet
        with _streams(router_url, topo.served_model_name):

            def busy() -> dict[str, Any]:
                load = _record(redis_server.url, "load")
                return load if load.get("running", 0) > 0 and load.get("kv_usage", 0) > 0 else {}

            load = _wait_for(busy, 10)
            assert load, f"the router never saw load: {_record(redis_server.url, 'load')}"
            assert 0 < load["running"] <= STREAMS and 0 < load["kv_usage"] < 1
            assert _drainer(engine).drain(1.5, "trtllm") is False  # requests run: it waits
        began = time.monotonic()
        assert _drainer(engine).drain(10, "trtllm") is True  # aborted by the router: idle
        assert time.monotonic() - began < 10
        assert _wait_for(lambda: _record(redis_server.url, "load").get("running") == 0, 5)


def test_trtllm_long_poll_keeps_the_endpoint_healthy_and_load_arrives_after_it(
    redis_server: LocalRedis,
) -> None:
    """trtllm-serve 1.2's /metrics does not answer while iterations keep coming: the
    router's health probes must not fail on it (they did when /metrics shared the 1 s probe
    timeout), routing goes on, and the load arrives once the engine falls quiet."""
    with _replica(redis_server.url, trtllm_stats_wait_s=TRTLLM_STATS_WAIT_S) as (
        topo,
        engine,
        router_url,
    ):
        model = topo.served_model_name
        with _streams(router_url, model) as client:
            busy_since = time.time()
            time.sleep(3 * 0.3 + TRTLLM_STATS_WAIT_S)  # several probes while the poll is open
            health = _record(redis_server.url, "health")
            assert health["ok"] and health["ts"] > busy_since, health
            reply = client.post(router_url + "/v1/chat/completions",
                                json=chat_body(model, "still routed", max_tokens=4))  # fmt: skip
            assert reply.status_code == 200, reply.text
            assert _drainer(engine).drain(1.5, "trtllm") is False
            quiet_from = time.time()
        # Streams closed: the engine falls quiet and the open read answers.
        fresh = _wait_for(
            lambda: _record(redis_server.url, "load").get("ts", 0) > quiet_from,
            TRTLLM_STATS_WAIT_S + 5,
        )
        assert fresh, "no load arrived after the engine fell quiet"
        assert _drainer(engine).drain(10, "trtllm") is True
        assert _record(redis_server.url, "health")["ok"]
