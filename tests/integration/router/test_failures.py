"""Failures: a dying engine loses no request that had not started streaming, mid-stream
failures end with an SSE error event, unhealthy endpoints leave and rejoin, Redis outages
cause no 5xx."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from controlplane.engines.sim import SimServer
from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import list_endpoints
from controlplane.spec import Topology
from tests.integration.router.conftest import Cluster
from tests.integration.router.helpers import chat_body, router_outcomes, served_by

pytestmark = pytest.mark.integration
Factory = Callable[[LocalRedis, Topology], Cluster]


@dataclass
class Outcomes:
    statuses: list[int] = field(default_factory=list)
    completed_streams: int = 0
    error_events: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def one_request(client: httpx.Client, url: str, model: str, index: int, out: Outcomes,
                policy: str = "round_robin") -> None:  # fmt: skip
    stream = index % 2 == 0
    body = chat_body(model, f"request {index} " * 30, max_tokens=40, ignore_eos=True, stream=stream)
    headers = {"x-glmctl-policy": policy}
    try:
        with client.stream("POST", url + "/v1/chat/completions", json=body,
                           headers=headers) as response:  # fmt: skip
            data = response.read()
            status = response.status_code
    except httpx.HTTPError:
        status = 599
        data = b""
    with out.lock:
        out.statuses.append(status)
        if stream and status == 200:
            out.completed_streams += data.rstrip().endswith(b"data: [DONE]")
            out.error_events += b'"upstream_error"' in data


def load(url: str, model: str, total: int, seconds: float, threads: int = 6,
         policy: str = "round_robin") -> tuple[Outcomes, list[threading.Thread]]:  # fmt: skip
    """`total` requests from `threads` clients, stopping early after `seconds`."""
    out = Outcomes()
    counter = iter(range(total))
    deadline = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            for index in counter:
                if time.monotonic() > deadline:
                    return
                one_request(client, url, model, index, out, policy)

    started = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in started:
        thread.start()
    return out, started


@pytest.mark.slow
def test_killing_an_engine_under_load_loses_no_unstarted_request(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    for name in ("a", "b", "c"):
        cluster.engine(name)
    url = cluster.router("round_robin", workers=2)
    out, threads = load(url, cluster.model, total=90, seconds=40)
    time.sleep(1.0)
    cluster.engines["b"].process.kill()
    for thread in threads:
        thread.join(timeout=60)
    assert len(out.statuses) == 90
    assert set(out.statuses) == {200}  # retried before the first byte, or ended with an event
    streams = (90 + 1) // 2
    assert out.completed_streams + out.error_events == streams
    assert out.error_events <= 6  # only streams already running on "b" (at most 6 clients)


def test_unhealthy_endpoint_leaves_rotation_and_returns(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    cluster.engine("a")
    port = cluster.engine("b").port
    url = cluster.router("round_robin")
    body = chat_body(cluster.model, "x", max_tokens=2)
    cluster.engines["b"].stop()
    with httpx.Client(timeout=30) as client:
        served = [served_by(client.post(url + "/v1/chat/completions", json=body))
                  for _ in range(8)]  # fmt: skip
        assert served == ["a"] * 8
        cluster.engines["b"] = SimServer.start(topo, port=port, flavor="vllm")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if served_by(client.post(url + "/v1/chat/completions", json=body)) == "b":
                break
            time.sleep(0.1)
        else:
            pytest.fail("the recovered endpoint never rejoined the rotation")


def test_stream_that_fails_mid_way_ends_with_an_error_event(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    engine = cluster.engine("a")
    url = cluster.router("round_robin")
    body = chat_body(cluster.model, "x", max_tokens=400, ignore_eos=True, stream=True)
    received = b""
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            if not received:
                engine.process.kill()
            received += chunk
    assert b"data: {" in received  # tokens arrived before the failure
    assert received.rstrip().endswith(b"}") and b'"upstream_error"' in received
    assert router_outcomes(url, "midstream_error") == {"midstream_error": 1}  # not "ok"


@pytest.mark.slow
def test_redis_down_for_10_s_causes_no_5xx(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    cluster.engine("a")
    cluster.engine("b")
    url = cluster.router("prefix_affinity", workers=2)
    out, threads = load(url, cluster.model, total=4000, seconds=14, threads=3,
                        policy="prefix_affinity")  # fmt: skip
    time.sleep(1.0)
    redis_server.restart(down_for=10.0)  # blocks while Redis is down; the load keeps going
    for thread in threads:
        thread.join(timeout=60)
    assert out.statuses and set(out.statuses) == {200}
    time.sleep(0.5)
    assert [e.endpoint_id for e in list_endpoints(redis_server.url)] == ["a", "b"]  # resynced


def test_client_that_disconnects_mid_stream_aborts_the_engine_request(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    from controlplane.router.engine_metrics import parse_engine_metrics

    cluster = cluster_factory(redis_server, topo)
    engine = cluster.engine("a")
    url = cluster.router("round_robin")
    body = chat_body(cluster.model, "x", max_tokens=3000, ignore_eos=True, stream=True)
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as response:
        next(response.iter_bytes())
    deadline = time.monotonic() + 5
    running = 1
    while running and time.monotonic() < deadline:
        time.sleep(0.2)
        running = parse_engine_metrics(httpx.get(engine.url + "/metrics").text, "vllm").running
    assert running == 0  # 3000 tokens would take far longer than 5 s


def test_a_killed_routers_in_flight_counts_expire_for_the_others(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    cluster.engine("a")
    cluster.engine("b")
    dying, survivor = cluster.router("session"), cluster.router("least_load")
    body = chat_body(cluster.model, "hold", max_tokens=3000, ignore_eos=True, stream=True)
    with httpx.Client(timeout=30) as client:
        pin = {"x-session-id": "pinned"}
        client.post(dying + "/v1/chat/completions", json=chat_body(cluster.model, "x"),
                    headers=pin).raise_for_status()  # fmt: skip
        time.sleep(0.3)
        streams = [client.stream("POST", dying + "/v1/chat/completions", json=body, headers=pin)
                   for _ in range(4)]  # fmt: skip
        responses = [stream.__enter__() for stream in streams]
        busy = {served_by(r) for r in responses}
        time.sleep(0.5)
        quick = chat_body(cluster.model, "q", max_tokens=2)
        while_alive = {served_by(client.post(survivor + "/v1/chat/completions", json=quick))
                       for _ in range(6)}  # fmt: skip
        cluster.routers[0].process.kill()  # mid-request: no chance to decrement anything
        for stream in streams:
            stream.__exit__(None, None, None)
        time.sleep(3.0)  # lease 2 s
        after = [served_by(client.post(survivor + "/v1/chat/completions", json=quick))
                 for _ in range(6)]  # fmt: skip
    assert len(busy) == 1 and busy.isdisjoint(while_alive)
    assert busy <= set(after)  # the dead router's counts no longer weigh on the endpoint
