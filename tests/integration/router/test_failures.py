"""Failures: a dying engine loses no request that had not started streaming, mid-stream
failures end with an SSE error event, unhealthy endpoints leave and rejoin, Redis outages
cause no 5xx."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


class SlowHealth:
    """An HTTP hop in front of an engine whose next `late` /health answers come after
    `delay_s` (a busy engine: its API server answers, but late); the rest pass straight."""

    def __init__(self, upstream: str, delay_s: float) -> None:
        import asyncio

        self.upstream, self.delay_s, self.late = upstream, delay_s, 0
        self.runner: Any = None
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def _run(self, ready: threading.Event) -> None:
        import asyncio

        from aiohttp import ClientSession, web

        async def handle(request: web.Request) -> web.Response:
            if request.path == "/health" and self.late:
                self.late -= 1
                await asyncio.sleep(self.delay_s)
            async with ClientSession() as session, session.request(
                request.method, self.upstream + request.path_qs, data=await request.read(),
                headers={"content-type": request.headers.get("content-type", "text/plain")},
            ) as answer:  # fmt: skip
                body = await answer.read()
                kind = answer.headers.get("content-type", "text/plain")
                return web.Response(body=body, status=answer.status,
                                    headers={"content-type": kind})  # fmt: skip

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = self.runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        self.loop.run_until_complete(serve())
        self.loop.run_forever()

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _health(redis_url: str, endpoint_id: str) -> dict[str, object]:
    import json

    import redis

    with redis.Redis.from_url(redis_url) as client:
        raw = client.hget("glmctl:health", endpoint_id)
    return json.loads(raw) if raw else {}


def test_a_late_health_probe_is_load_not_death(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    """A busy engine answers /health late: the only replica stays in rotation through two
    late probes (before, one took it out and every request got 503), and leaves after
    three in a row (router/collector.py SLOW_PROBES); it rejoins when it answers in time
    again. One router worker, so its probes come one after another."""
    from controlplane.router.registry import register_endpoint

    cluster = cluster_factory(redis_server, topo)
    engine = SimServer.start(topo, flavor="vllm")
    cluster.engines["slow"] = engine
    hop = SlowHealth(engine.url, delay_s=1.0)  # the probes' timeout: 0.5 s here
    try:
        register_endpoint(redis_server.url, "slow", hop.url, cluster.model, "g", "vllm")
        url = cluster.router(workers=1)
        body = chat_body(cluster.model, "x", max_tokens=2)
        with httpx.Client(timeout=30) as client:
            assert client.post(url + "/v1/chat/completions", json=body).status_code == 200
            hop.late = 2
            seen_late, settled = 0, 0.0
            deadline = time.monotonic() + 20
            while time.monotonic() < min(deadline, settled or deadline):
                if not hop.late and not settled:
                    settled = time.monotonic() + 1.0  # and a probe or two after them
                answer = client.post(url + "/v1/chat/completions", json=body)
                assert answer.status_code == 200, answer.text  # never out of rotation
                record = _health(redis_server.url, "slow")
                assert record.get("ok") is True, record
                seen_late = max(seen_late, int(record.get("late", 0)))  # type: ignore[call-overload]
                time.sleep(0.05)
            assert seen_late >= 1 and hop.late == 0
            hop.late = 10**6  # from now on every /health is late
            deadline = time.monotonic() + 20
            while _health(redis_server.url, "slow").get("ok") and time.monotonic() < deadline:
                time.sleep(0.1)
            record = _health(redis_server.url, "slow")
            assert record.get("ok") is False and "3 probe(s) in a row" in str(record["error"])
            assert client.post(url + "/v1/chat/completions", json=body).status_code == 503
            hop.late = 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if client.post(url + "/v1/chat/completions", json=body).status_code == 200:
                    break
                time.sleep(0.2)
            else:
                pytest.fail("the engine answering in time again never rejoined")
    finally:
        hop.stop()
