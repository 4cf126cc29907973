"""Prefill/decode disaggregation end to end: real Redis, simulated prefill and decode
replicas (`--pd-role`), a real router process; both engine flavours."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.engines.sim import SimServer
from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import EndpointInfo, register_info
from controlplane.router.server import RouterProcesses
from controlplane.spec import Topology
from controlplane.store.redis import connection
from tests.integration.router.helpers import chat_body, router_outcomes

pytestmark = pytest.mark.integration
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@dataclass
class PdCluster:
    redis: LocalRedis
    topo: Topology
    flavor: str
    engines: dict[str, SimServer] = field(default_factory=dict)
    routers: list[RouterProcesses] = field(default_factory=list)

    def engine(self, endpoint_id: str, role: str, **options: object) -> SimServer:
        server = SimServer.start(self.topo, flavor=self.flavor, pd_role=role, **options)  # type: ignore[arg-type]
        self.engines[endpoint_id] = server
        info = EndpointInfo(endpoint_id, server.url, self.topo.served_model_name, "g",
                            self.flavor, pd=role,
                            bootstrap_port=server.port if role == "prefill" else 0)  # fmt: skip
        register_info(self.redis.url, info)
        return server

    def router(self, scrape_interval: float = 0.3) -> str:
        handle = RouterProcesses.start(
            self.redis.url, policy="least_load", scrape_interval=scrape_interval
        )
        self.routers.append(handle)
        return handle.url

    def close(self) -> None:
        for handle in self.routers:
            handle.stop()
        for server in self.engines.values():
            server.stop()


@pytest.fixture
def pd_cluster(request: pytest.FixtureRequest, topo: Topology) -> Iterator[PdCluster]:
    redis = LocalRedis.start()
    cluster = PdCluster(redis, topo, request.param)
    try:
        yield cluster
    finally:
        cluster.close()
        redis.stop()


def _series(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


@pytest.mark.parametrize("pd_cluster", ["sglang", "vllm"], indirect=True)
def test_openai_client_through_pd(pd_cluster: PdCluster) -> None:
    """Streaming and non-streaming chat, a tool call and a reasoning answer through one
    prefill and one decode replica; both pools count the requests."""
    p = pd_cluster.engine("p0", "prefill")
    d = pd_cluster.engine("d0", "decode")
    url = pd_cluster.router()
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
    model = pd_cluster.topo.served_model_name
    messages = [{"role": "user", "content": "explain prefill and decode " * 20}]

    answer = client.chat.completions.create(model=model, messages=messages, max_tokens=30)  # type: ignore[arg-type]
    assert answer.choices[0].message.content or answer.choices[0].message.reasoning_content  # type: ignore[attr-defined]
    assert answer.usage is not None and answer.usage.prompt_tokens > 50

    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=30, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or ""
                        for c in chunks if c.choices)  # fmt: skip
    assert reasoning, "GLM thinking is on by default: the stream carries reasoning_content"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    tool = client.chat.completions.create(
        model=model, tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "use get_weather for Paris"}],
    )  # fmt: skip
    call = tool.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    assert tool.choices[0].finish_reason == "tool_calls"

    finished = "sglang:num_requests_total" if pd_cluster.flavor == "sglang" else (
        "vllm:request_success_total")  # fmt: skip
    assert _series(p.url, finished) == 3
    assert _series(d.url, finished) == 3
    latency = ("sglang:kv_transfer_latency_ms_count" if pd_cluster.flavor == "sglang"
               else "vllm:nixl_xfer_time_seconds_count")  # fmt: skip
    assert _series(p.url, latency) + _series(d.url, latency) == 3
    assert router_outcomes(url, "ok").get("ok") == 3
    reply = httpx.post(url + "/v1/chat/completions", json={"model": model, "messages": messages,
                       "max_tokens": 5}, timeout=30)  # fmt: skip
    assert reply.headers["x-glmctl-endpoint"] == "d0"
    assert reply.headers["x-glmctl-prefill-endpoint"] == "p0"


@dataclass
class Results:
    ok: int = 0
    error_events: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _stream_one(url: str, model: str, index: int, out: Results) -> None:
    body = chat_body(model, f"request {index} " * 40, max_tokens=8, ignore_eos=True, stream=True)
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as reply:
            data = reply.read()
            status = reply.status_code
    except httpx.HTTPError as exc:
        status, data = 599, str(exc).encode()
    with out.lock:
        if status == 200 and b'"error"' in data:
            out.error_events.append(data.decode())
        elif status == 200 and data.rstrip().endswith(b"data: [DONE]"):
            out.ok += 1
        else:
            out.other.append(f"{status} {data[:200]!r}")


@pytest.mark.parametrize("pd_cluster", ["sglang", "vllm"], indirect=True)
def test_prefill_killed_mid_load(pd_cluster: PdCluster) -> None:
    """Two prefill replicas, one decode; one prefill dies while transfers run: requests
    in transfer on it end with a clear error event (counted), none fails before its first
    byte, and later requests all succeed on the other prefill."""
    # A slow link (0.1 Gb/s) stretches each transfer to a few hundred ms, so the kill
    # lands while transfers are in flight.
    victim = pd_cluster.engine("p0", "prefill", pd_link_gbps=0.1)
    pd_cluster.engine("p1", "prefill", pd_link_gbps=0.1)
    pd_cluster.engine("d0", "decode", pd_timeout=5.0)
    url = pd_cluster.router()
    model = pd_cluster.topo.served_model_name
    out = Results()
    stop = threading.Event()
    counter = iter(range(10_000))

    def client() -> None:
        while not stop.is_set():
            _stream_one(url, model, next(counter), out)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    inflight = ("sglang:num_prefill_inflight_queue_reqs" if pd_cluster.flavor == "sglang"
                else "sglang:none")  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # kill while p0 holds work
        if pd_cluster.flavor == "vllm" or _series(victim.url, inflight) > 0:
            break
        time.sleep(0.02)
    time.sleep(0.3 if pd_cluster.flavor == "vllm" else 0.0)
    victim.process.kill()
    victim.process.wait()
    killed_at = out.ok + len(out.error_events)
    time.sleep(4)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not out.other, out.other  # nothing failed before its first byte
    for event in out.error_events:
        assert "KV transfer from prefill endpoint p0 to decode endpoint d0 failed" in event
    assert out.ok > killed_at + 4, "requests after the kill succeed on p1"
    counted = router_outcomes(url, "ok")
    assert counted.get("midstream_error", 0) == len(out.error_events)
    text = httpx.get(url + "/metrics", timeout=5).text
    transfer_errors = sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples
        if s.name == "glmctl_router_errors_total" and s.labels.get("kind") == "pd_transfer"
    )  # fmt: skip
    assert transfer_errors == len(out.error_events)
    if pd_cluster.flavor == "sglang":
        assert out.error_events, "the kill landed during a transfer"
    time.sleep(1.0)  # the router republishes its in-flight counts every scrape interval
    with connection(pd_cluster.redis.url) as redis:
        for key in redis.keys("glmctl:inflight:*"):
            counts = {k.decode(): int(v) for k, v in redis.hgetall(key).items()}
            assert not any(counts.values()), f"requests stranded in flight: {counts}"


@pytest.mark.parametrize("pd_cluster", ["sglang", "vllm"], indirect=True)
def test_dead_prefill_or_decode_is_avoided(pd_cluster: PdCluster) -> None:
    """A prefill and a decode replica that are down before the requests come: every
    request is answered by the live pair (retried when it tried a dead one first)."""
    dead_p = pd_cluster.engine("p0", "prefill")
    pd_cluster.engine("p1", "prefill")
    dead_d = pd_cluster.engine("d0", "decode")
    pd_cluster.engine("d1", "decode")
    url = pd_cluster.router(scrape_interval=30)  # no health probe notices the kills first
    time.sleep(0.5)
    for server in (dead_p, dead_d):
        server.process.kill()
        server.process.wait()
    model = pd_cluster.topo.served_model_name
    for i in range(6):
        body = chat_body(model, f"after the kill {i} " * 20, max_tokens=5, stream=i % 2 == 0)
        reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        assert b'"error"' not in reply.content
        assert reply.headers["x-glmctl-endpoint"] == "d1"
        assert reply.headers["x-glmctl-prefill-endpoint"] == "p1"
    assert router_outcomes(url, "ok").get("ok") == 6
    assert _series(url, "glmctl_router_retries_total") >= 1  # a dead one was tried first


@pytest.mark.parametrize("pd_cluster", ["sglang"], indirect=True)
def test_a_pool_without_a_healthy_endpoint_answers_503(pd_cluster: PdCluster) -> None:
    """The only decode replica is down and the health probe knows it: the request is
    refused with 503, not sent to the prefill replica as if it were colocated (where
    SGLang answers 400 for the missing bootstrap room)."""
    pd_cluster.engine("p0", "prefill")
    dead_d = pd_cluster.engine("d0", "decode")
    url = pd_cluster.router(scrape_interval=0.2)
    dead_d.process.kill()
    dead_d.process.wait()
    body = chat_body(pd_cluster.topo.served_model_name, "no decode " * 20, max_tokens=5)
    deadline = time.monotonic() + 10
    while True:  # until the probe has marked d0 down (before, d0 is tried and fails: 502)
        reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
        if reply.status_code != 502 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert reply.status_code == 503, reply.text
    assert "no healthy prefill and decode endpoints" in reply.text
