"""A router scraping a simulated TensorRT-LLM replica sees its load, and a drain waits.

The simulator answers `/metrics` as trtllm-serve does (a JSON list of iteration stats,
drained by each read); the router reads it under the `trtllm` flavour, and the engine-side
drain reads the same endpoint while the router keeps scraping it (the two readers split
the queue, as they would on a real engine).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import redis

from controlplane.engines.base import EngineProcess, LaunchCommand
from controlplane.engines.sim import SimServer
from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import register_endpoint
from controlplane.router.server import RouterProcesses
from controlplane.spec import load_topology
from tests.integration.router.conftest import REPO
from tests.integration.router.helpers import chat_body

pytestmark = pytest.mark.integration
TOPOLOGY = REPO / "topologies" / "chatglm2-6b-trtllm-int8-l40sx1.yaml"
STREAMS = 4


def _load(redis_url: str, endpoint_id: str) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.hget("glmctl:load", endpoint_id)
    finally:
        client.close()
    return json.loads(raw) if raw else {}


def _wait_for(check: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.1)
        value = check()
    return value


def test_router_sees_trtllm_load_and_drain_waits_for_it(redis_server: LocalRedis) -> None:
    topo = load_topology(TOPOLOGY)
    assert topo.spec.simulation.flavor is not None
    assert topo.spec.simulation.flavor.value == "trtllm"  # what a trtllm replica simulates
    model = topo.served_model_name
    engine = SimServer.start(topo)  # the spec's flavour
    router = RouterProcesses.start(redis_server.url, workers=1, scrape_interval=0.3)
    streams: list[Any] = []
    try:
        assert engine.process is not None
        assert httpx.get(engine.url + "/metrics").json() == []  # idle: no iteration yet
        register_endpoint(redis_server.url, "t", engine.url, model, "g", "trtllm")

        def routed() -> bool:
            models = httpx.get(router.url + "/v1/models", timeout=5).json().get("data", [])
            return any(m.get("id") == model for m in models)

        assert _wait_for(routed, 10), "the router never picked up the endpoint"
        body = chat_body(model, "hold " * 200, max_tokens=3000, ignore_eos=True, stream=True)
        client = httpx.Client(timeout=30)
        for _ in range(STREAMS):
            stream = client.stream("POST", router.url + "/v1/chat/completions", json=body)
            response = stream.__enter__()
            assert response.status_code == 200, response.read()
            streams.append(stream)

        def busy() -> dict[str, Any]:
            load = _load(redis_server.url, "t")
            return load if load.get("running", 0) > 0 and load.get("kv_usage", 0) > 0 else {}

        load = _wait_for(busy, 10)
        assert load, f"the router never saw load: {_load(redis_server.url, 't')}"
        assert 0 < load["running"] <= STREAMS and 0 < load["kv_usage"] < 1

        process = EngineProcess(LaunchCommand(("sim",)), engine.url, process=engine.process)
        assert process.drain(1.5, "trtllm") is False  # requests run: the drain waits
        for stream in streams:
            stream.__exit__(None, None, None)
        streams.clear()
        client.close()
        began = time.monotonic()
        assert process.drain(10, "trtllm") is True  # aborted by the router: idle
        assert time.monotonic() - began < 10

        def idle() -> bool:
            return _load(redis_server.url, "t").get("running", -1) == 0

        assert _wait_for(idle, 5)
    finally:
        for stream in streams:
            stream.__exit__(None, None, None)
        router.stop()
        engine.stop()
