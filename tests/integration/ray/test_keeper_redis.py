"""The keeper's Redis repair against a real redis-server (no Ray): a Redis that exited
comes back on the same port and password with the durable keys, and only those."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis

from controlplane.backends.ray.keeper_heal import DurableKeys, restart_redis
from controlplane.local.redis_server import LocalRedis

pytestmark = pytest.mark.integration


def test_an_exited_redis_comes_back_with_its_durable_keys(tmp_path: Path) -> None:
    server = LocalRedis.start(password_file=tmp_path / "redis.password")
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        client.set("glmctl:deployment:demo", '{"name": "demo"}')
        client.sadd("glmctl:deployments", "demo")
        client.rpush("glmctl:failures:demo", "1.0", "2.0")
        client.hset("glmctl-demo:apikeys", "digest", '{"name": "ci"}')
        client.hset("glmctl-demo:endpoints", "e0", "{}")  # soft state: routers re-seed it
        durable = DurableKeys()
        durable.take(client, time.monotonic())
        url, port = server.url, server.port
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=10)
        server = restart_redis(server, durable)
        assert (server.url, server.port) == (url, port)  # clients keep their URL
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.get("glmctl:deployment:demo") == '{"name": "demo"}'
        assert client.smembers("glmctl:deployments") == {"demo"}
        assert client.lrange("glmctl:failures:demo", 0, -1) == ["1.0", "2.0"]
        assert client.hgetall("glmctl-demo:apikeys") == {"digest": '{"name": "ci"}'}
        assert not client.exists("glmctl-demo:endpoints")
        client.set("glmctl:deployment:demo", "newer")
        client.delete("glmctl:failures:demo")
        assert durable.restore(client) == 1  # only the missing key; one written since wins
        assert client.get("glmctl:deployment:demo") == "newer"
        assert client.llen("glmctl:failures:demo") == 2
    finally:
        client.close()
        server.stop()
