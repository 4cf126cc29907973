"""Keys made with `glmctl keys`, checked by a real router against a password-protected Redis:
401 (none, wrong, revoked within one refresh), 403 (model), 429 (rpm, tpm, concurrency),
400/413 (request cost), and a router without the Redis password refused at start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from controlplane.local.redis_server import LocalRedis
from controlplane.local.secrets import without_password
from controlplane.router.limits import RequestLimits
from controlplane.spec import Topology
from tests.integration.router.conftest import Cluster
from tests.integration.router.helpers import chat_body, held_streams

pytestmark = pytest.mark.integration
Factory = Callable[[LocalRedis, Topology], Cluster]
NS = "glmctl-authdemo"  # the namespace `glmctl keys ... authdemo` picks
GLMCTL = str(Path(sys.executable).with_name("glmctl"))


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    folder = tmp_path_factory.mktemp("redis-auth")
    server = LocalRedis.start(password_file=folder / "redis.password")
    try:
        yield server
    finally:
        server.stop()


def keys_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLMCTL_REDIS")}
    return subprocess.run(
        [GLMCTL, "keys", *args, "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def create(redis_url: str, name: str, *options: str) -> str:
    done = keys_cli(redis_url, "create", "authdemo", "--name", name, *options)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_redis_refuses_a_client_without_the_password(locked_redis: LocalRedis) -> None:
    password_file = locked_redis.password_file
    assert password_file is not None and password_file.stat().st_mode & 0o077 == 0
    bare = redis.Redis.from_url(without_password(locked_redis.url), socket_timeout=2)
    with pytest.raises(redis.exceptions.AuthenticationError):
        bare.ping()
    bare.close()
    started = subprocess.run(
        [sys.executable, "-m", "controlplane.router", "--redis-url",
         without_password(locked_redis.url), "--port", "1", "--namespace", NS],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "GLMCTL_REDIS_PASSWORD"},
    )  # fmt: skip
    assert started.returncode == 2
    assert "refused the password" in started.stderr and "To fix:" in started.stderr


def test_keys_401_403_429_and_revocation(
    locked_redis: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(locked_redis, topo)
    cluster.engine("only", namespace=NS)
    url = cluster.router("round_robin", namespace=NS, auth="api_keys")
    model = cluster.model
    body = chat_body(model, "x", max_tokens=2)
    with httpx.Client(base_url=url, timeout=30) as client:
        missing = client.post("/v1/chat/completions", json=body)
        assert missing.status_code == 401  # api_keys and no key exists yet: still refused
        assert missing.json()["error"]["type"] == "authentication_error"
        good = create(locked_redis.url, "team", "--rpm", "3")
        other = create(locked_redis.url, "other-model", "--model", "some-other-model")
        assert good.startswith("sk-glmctl-") and good != other
        listed = keys_cli(locked_redis.url, "list", "authdemo", "-o", "json")
        assert "team" in listed.stdout and good not in listed.stdout and other not in listed.stdout
        time.sleep(0.3)  # > 2 refresh intervals
        wrong = client.post("/v1/chat/completions", json=body, headers=_bearer("sk-glmctl-no"))
        assert wrong.status_code == 401
        denied = client.post("/v1/chat/completions", json=body, headers=_bearer(other))
        assert denied.status_code == 403
        assert denied.json()["error"] == {
            "message": f"this API key may not use model `{model}`",
            "type": "permission_error",
            "code": 403,
        }
        codes = [client.post("/v1/chat/completions", json=body, headers=_bearer(good))
                 for _ in range(4)]  # fmt: skip
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        assert int(codes[-1].headers["retry-after"]) >= 1
        assert "requests per minute" in codes[-1].json()["error"]["message"]
        revoked = keys_cli(locked_redis.url, "revoke", "authdemo", "other-model")
        assert revoked.returncode == 0, revoked.stderr
        began = time.monotonic()
        while (
            client.post("/v1/chat/completions", json=body, headers=_bearer(other)).status_code
            != 401
        ):
            assert time.monotonic() - began < 2.0
        took = time.monotonic() - began
    print(f"revoked key refused after {took * 1000:.0f} ms (refresh interval 100 ms)")
    assert took < 0.1 + 0.4  # one refresh interval, plus slack for a loaded 2-core machine


def test_tokens_concurrency_and_request_size(
    locked_redis: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(locked_redis, topo)
    cluster.engine("only", namespace=NS)
    limits = RequestLimits(max_body_bytes=2048, max_tokens=300)
    url = cluster.router("round_robin", namespace=NS, auth="api_keys", limits=limits)
    tokens = create(locked_redis.url, "tokens", "--tpm", "400")
    single = create(locked_redis.url, "single", "--max-concurrent", "1")
    time.sleep(0.3)
    model = cluster.model
    with httpx.Client(base_url=url, timeout=30) as client:
        post = client.post
        costly = chat_body(model, "x", max_tokens=150)  # about 151 tokens each
        codes = [post("/v1/chat/completions", json=costly, headers=_bearer(tokens)).status_code
                 for _ in range(3)]  # fmt: skip
        assert codes == [200, 200, 429]
        over = post("/v1/chat/completions", json=chat_body(model, "x", max_tokens=301),
                    headers=_bearer(single))  # fmt: skip
        assert over.status_code == 400 and "300" in over.json()["error"]["message"]
        big = post("/v1/chat/completions", json=chat_body(model, "y" * 4000),
                   headers=_bearer(single))  # fmt: skip
        assert big.status_code == 413
    hold = chat_body(model, "hold", max_tokens=250, ignore_eos=True, stream=True)
    with held_streams(url, hold, 1, headers=_bearer(single)):
        second = httpx.post(url + "/v1/chat/completions", json=chat_body(model, "x"),
                            headers=_bearer(single), timeout=30)  # fmt: skip
    assert second.status_code == 429
    assert "in flight" in second.json()["error"]["message"]
    time.sleep(0.2)  # the slot is freed in the background when the stream ends
    third = httpx.post(url + "/v1/chat/completions", json=chat_body(model, "x", max_tokens=2),
                       headers=_bearer(single), timeout=30)  # fmt: skip
    assert third.status_code == 200


def _bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A password-protected Redis that speaks only TLS; yields its rediss:// URL."""
    import shutil

    from controlplane.local.ports import free_port, wait_port
    from controlplane.local.secrets import generate_password, write_secret

    if shutil.which("openssl") is None:
        pytest.skip("needs openssl for a test certificate")
    folder = tmp_path_factory.mktemp("redis-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    password, port = generate_password(), free_port()
    conf = write_secret(folder / "redis.conf", f"requirepass {password}\n")
    server = subprocess.Popen(
        ["redis-server", str(conf), "--port", "0", "--tls-port", str(port), "--bind",
         "127.0.0.1", "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--save", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_port(port, timeout=10)
        yield f"rediss://:{password}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    finally:
        server.terminate()
        server.wait(10)


def test_router_and_keys_over_tls_redis(tls_redis: str, topo: Topology) -> None:
    from controlplane.engines.sim import SimServer
    from controlplane.router.registry import register_endpoint
    from controlplane.router.server import RouterProcesses

    engine = SimServer.start(topo, flavor="vllm")
    router = None
    try:
        register_endpoint(tls_redis, "tls-only", engine.url, topo.served_model_name, "g",
                          "vllm", NS)  # fmt: skip
        secret = create(tls_redis, "tls")
        router = RouterProcesses.start(tls_redis, policy="round_robin", namespace=NS)
        time.sleep(0.3)
        body = chat_body(topo.served_model_name, "x", max_tokens=2)
        with httpx.Client(base_url=router.url, timeout=30) as client:
            assert client.post("/v1/chat/completions", json=body).status_code == 401
            ok = client.post("/v1/chat/completions", json=body, headers=_bearer(secret))
            assert ok.status_code == 200, ok.text
            assert client.get("/health").json()["redis"] is True
    finally:
        if router is not None:
            router.stop()
        engine.stop()
