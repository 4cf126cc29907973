"""External endpoints through the real router: overflow when the local replica is
saturated, failover both ways, a rejected key surfaced clearly, and the key in no output.

A second simulated engine stands in for a hosted API: it serves another model name
(`glm-hosted`, so a request reaches it only if the router rewrote `model`) and requires
`Authorization: Bearer <key>` (`--api-key-env`). The router reads the key from its own
environment (`api_key: {env: HOSTED_KEY}`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from controlplane.engines.sim import SimServer
from controlplane.local.redis_server import LocalRedis
from controlplane.router.external import ExternalEndpoint
from controlplane.spec import Topology
from tests.integration.router.conftest import Cluster
from tests.integration.router.helpers import chat_body

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
Factory = Callable[[LocalRedis, Topology], Cluster]
KEY_ENV = "HOSTED_KEY"
HOSTED_MODEL = "glm-hosted"
SATURATED_AT = 2  # in-flight requests at which the local replica counts as saturated


@dataclass
class Setup:
    cluster: Cluster
    url: str
    key: str
    hosted: SimServer
    log: Path


@dataclass
class Results:
    statuses: list[int] = field(default_factory=list)
    served: list[str] = field(default_factory=list)
    complete: int = 0  # streams that ended with [DONE]
    bodies: list[bytes] = field(default_factory=list)


def make_setup(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               scrape_interval: float = 0.3) -> Setup:  # fmt: skip
    """One local replica, one key-checking hosted stand-in (overflow), one router."""
    key = "sk-hosted-" + secrets.token_hex(16)
    cluster.engine("local")
    hosted = SimServer.start(cluster.topo, flavor="vllm", served_model_name=HOSTED_MODEL,
                             api_key_env=KEY_ENV, env={KEY_ENV: key})  # fmt: skip
    cluster.engines["hosted"] = hosted
    monkeypatch.setenv(KEY_ENV, key)  # the router's environment
    external = ExternalEndpoint(
        name="hosted",
        base_url=hosted.url + "/v1",
        model=cluster.model,
        upstream_model=HOSTED_MODEL,
        role="overflow",
        capacity=16,
        key_env=KEY_ENV,
    )
    log = tmp_path / "router.log"
    url = cluster.router("least_load", external=(external,), overflow_at=SATURATED_AT,
                         max_queue_per_endpoint=64, log_file=str(log),
                         scrape_interval=scrape_interval)  # fmt: skip
    return Setup(cluster, url, key, hosted, log)


@pytest.fixture
def setup(
    redis_server: LocalRedis,
    topo: Topology,
    cluster_factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Setup:
    return make_setup(cluster_factory(redis_server, topo), tmp_path, monkeypatch)


def drive(url: str, model: str, count: int, max_tokens: int = 60) -> Results:
    """`count` concurrent streams; returns their statuses, endpoints and completions."""
    out = Results()
    lock = threading.Lock()
    body = chat_body(model, "tell me a story " * 20, max_tokens=max_tokens, ignore_eos=True,
                     stream=True)  # fmt: skip

    def one() -> None:
        try:
            with (
                httpx.Client(timeout=60) as client,
                client.stream("POST", url + "/v1/chat/completions", json=body) as response,
            ):
                data = response.read()
                status, served = response.status_code, response.headers.get("x-glmctl-endpoint")
        except httpx.HTTPError:
            status, served, data = 599, None, b""
        with lock:
            out.statuses.append(status)
            out.served.append(served or "")
            out.bodies.append(data)
            out.complete += data.rstrip().endswith(b"data: [DONE]")

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return out


def started_at(engine: SimServer) -> int:
    """Requests that got their first token at `engine` (its own count)."""
    return int(httpx.get(engine.url + "/sim/stats", timeout=5).json()["ttft_count"])


def router_metric(url: str, prefix: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))  # fmt: skip


def test_overflow_goes_to_the_external_endpoint_only_when_local_is_saturated(
    setup: Setup,
) -> None:
    url, model = setup.url, setup.cluster.model
    alone = drive(url, model, 1)  # one request: the local replica has room
    assert alone.statuses == [200] and alone.served == ["local"]
    assert started_at(setup.hosted) == 0
    out = drive(url, model, 12)
    assert out.statuses == [200] * 12 and out.complete == 12
    at_hosted = started_at(setup.hosted)
    print(f"\n12 concurrent streams: {out.served.count('local')} local, {at_hosted} overflowed")
    assert out.served.count("external/hosted") == at_hosted  # the hosted API's own count
    assert at_hosted >= 12 - 2 * SATURATED_AT  # local took at most its share (twice, with
    assert out.served.count("local") >= 1  # the router's view up to a refresh behind)
    assert router_metric(url, 'glmctl_router_overflow_total{reason="saturated"') == at_hosted
    assert (
        'endpoint="external/hosted",kind="external",role="overflow"} 1'
        in httpx.get(url + "/metrics", timeout=5).text
    )


def test_external_down_fails_over_to_local_with_no_failed_request(setup: Setup) -> None:
    setup.hosted.stop()  # the router may not know yet: requests sent there are retried
    out = drive(setup.url, setup.cluster.model, 10, max_tokens=20)
    assert out.statuses == [200] * 10 and out.complete == 10
    assert set(out.served) == {"local"}  # queued at the local replica beyond saturation


def test_external_killed_under_load_loses_no_request_that_had_not_started(
    setup: Setup,
) -> None:
    """Waves of streams saturate the local replica; the hosted endpoint dies mid-way. Streams
    it had started end with an error event; every other request is answered in full."""
    waves: list[Results] = []
    runner = threading.Thread(
        target=lambda: waves.extend(drive(setup.url, setup.cluster.model, 8) for _ in range(3))
    )
    runner.start()
    time.sleep(0.8)  # inside the first wave: streams are running at the hosted endpoint
    setup.hosted.process.kill()
    runner.join(timeout=100)
    statuses = [s for wave in waves for s in wave.statuses]
    complete = sum(wave.complete for wave in waves)
    cut = sum(b'"upstream_error"' in body for wave in waves for body in wave.bodies)
    print(f"\n24 requests: {complete} complete, {cut} cut mid-stream at the killed endpoint")
    assert statuses == [200] * 24  # none failed before its first byte
    assert complete + cut == 24 and cut <= 8  # only streams already at the hosted endpoint
    assert set(waves[-1].served) == {"local"} and waves[-1].complete == 8


def test_local_down_fails_over_to_external(setup: Setup) -> None:
    setup.cluster.engines["local"].stop()
    out = drive(setup.url, setup.cluster.model, 4, max_tokens=10)
    assert out.statuses == [200] * 4 and set(out.served) == {"external/hosted"}
    assert router_metric(setup.url, 'glmctl_router_overflow_total{reason="failover"') >= 1
    setup.hosted.stop()  # nothing left: 502 while the router still tries, then 503 + Retry-After
    body = chat_body(setup.cluster.model, "hi", max_tokens=2)
    deadline = time.monotonic() + 10
    while (answer := httpx.post(setup.url + "/v1/chat/completions", json=body, timeout=10)
           ).status_code != 503 and time.monotonic() < deadline:  # fmt: skip
        assert answer.status_code == 502
        time.sleep(0.2)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"


def test_a_revoked_key_is_surfaced_and_traffic_stays_local(
    redis_server: LocalRedis,
    topo: Topology,
    cluster_factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The hosted API stops accepting the router's key between two health probes (20 s
    apart here): requests it refuses are retried elsewhere, the reason is clear."""
    setup = make_setup(cluster_factory(redis_server, topo), tmp_path, monkeypatch, 20.0)
    url, model = setup.url, setup.cluster.model
    port = setup.hosted.port
    setup.hosted.stop()  # back on its port with another key: the router's is revoked
    setup.hosted = SimServer.start(topo, port=port, flavor="vllm", served_model_name=HOSTED_MODEL,
                                   api_key_env=KEY_ENV, env={KEY_ENV: "sk-rotated"})  # fmt: skip
    setup.cluster.engines["hosted"] = setup.hosted
    out = drive(url, model, 6, max_tokens=20)  # saturates local: overflow tried, refused
    assert out.statuses == [200] * 6 and set(out.served) == {"local"}
    setup.cluster.engines["local"].stop()
    answer = httpx.post(url + "/v1/chat/completions", json=chat_body(model, "hi", max_tokens=2),
                        timeout=30)  # fmt: skip
    assert answer.status_code in (502, 503)  # the hosted endpoint is out: nothing is left
    reason = "external endpoint `hosted` rejected the API key glmctl sent (HTTP 401)"
    detail = f"{reason}; check the key its api_key names (env {KEY_ENV})"
    assert detail in _redis_dump(redis_server)  # the health record `glmctl status` reads
    assert f"external endpoint external/hosted is out of rotation: {detail}" in (
        setup.log.read_text()
    )


def test_the_key_appears_in_no_output(setup: Setup, redis_server: LocalRedis) -> None:
    url, model = setup.url, setup.cluster.model
    out = drive(url, model, 8, max_tokens=10)
    assert out.statuses == [200] * 8
    setup.hosted.stop()
    after = drive(url, model, 3, max_tokens=5)  # failures and retries get logged, if any
    outputs = {
        "responses": b"".join(out.bodies + after.bodies).decode(errors="replace"),
        "metrics": httpx.get(url + "/metrics", timeout=5).text,
        "models": httpx.get(url + "/v1/models", timeout=5).text,
        "redis": _redis_dump(redis_server),
        "router log": setup.log.read_text(errors="replace"),
        "command lines": subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True
        ).stdout,
        "router endpoints": _glmctl_endpoints(redis_server),
    }
    assert "external/hosted" in outputs["router endpoints"]
    leaks = [where for where, text in outputs.items() if setup.key in text]
    assert not leaks, f"the external endpoint's key appears in: {leaks}"


def _redis_dump(redis_server: LocalRedis) -> str:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    parts = []
    for name in client.scan_iter("*"):
        kind = client.type(name).decode()
        read = {"hash": client.hgetall, "string": client.get, "set": client.smembers,
                "zset": lambda n: client.zrange(n, 0, -1),
                "list": lambda n: client.lrange(n, 0, -1)}  # fmt: skip
        value = read.get(kind, lambda n: b"")(name)
        parts.append(f"{name!r} {value!r}")
    client.close()
    return "\n".join(parts)


def _glmctl_endpoints(redis_server: LocalRedis) -> str:
    glmctl = str(Path(sys.executable).with_name("glmctl"))
    done = subprocess.run([glmctl, "router", "endpoints", "--redis-url", redis_server.url],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ})  # fmt: skip
    return done.stdout + done.stderr
