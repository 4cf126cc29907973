"""The Kubernetes preStop hook's drain (backends/ray/prestop.py) through a real Redis, real
router processes and simulated engines: the replica on this pod's address leaves every
router's rotation at once, its held streams finish, the hook exits only then, and a
replica on another address is left alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis

from controlplane.autoscale.drain import Drainer
from controlplane.backends.ray.serve_app import REPLICAS_KEY
from controlplane.local.redis_server import LocalRedis
from controlplane.router.scripts import DRAINING
from controlplane.spec import Topology
from tests.integration.autoscale.helpers import SteadyLoad
from tests.integration.router.conftest import Cluster
from tests.integration.router.helpers import chat_body, held_streams

pytestmark = pytest.mark.integration
Factory = Callable[[LocalRedis, Topology], Cluster]
NS = "glmctl"
DEPLOYMENT = "k8s-prestop"
APP = f"{DEPLOYMENT}-engine"
HERE, ELSEWHERE = "127.0.0.1", "10.255.0.9"  # this pod's address; another pod's


def _record(client: redis.Redis, replica: str, host: str) -> str:
    info = {"replica_id": replica, "app": APP, "ranks": [{"rank": 0, "host": host}]}
    client.hset(REPLICAS_KEY.format(name=DEPLOYMENT), replica, json.dumps(info))
    return f"{APP}/{replica}"


def test_prestop_marks_draining_waits_for_streams_and_exits(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    client = redis.Redis.from_url(redis_server.url)
    mine, other = _record(client, "r1", HERE), _record(client, "r2", ELSEWHERE)
    cluster.engine(mine)
    cluster.engine(other)
    url = cluster.router("round_robin", workers=1)
    long_body = chat_body(cluster.model, "long", max_tokens=300, ignore_eos=True, stream=True)
    load = SteadyLoad(url, cluster.model)
    command = [
        sys.executable, "-m", "controlplane.backends.ray.prestop", DEPLOYMENT,
        "--host", HERE, "--timeout", "60", "--redis-url", redis_server.url,
        "--namespace", NS, "--peer-wait", "5",
    ]  # fmt: skip
    with held_streams(url, long_body, 4) as held:
        assert mine in held  # round robin: some long streams run on this pod's replica
        time.sleep(0.3)  # the routers publish in-flight counts every 0.1 s
        assert Drainer(client, NS, mine).in_flight() >= held.count(mine)
        began = time.monotonic()
        hook = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        while not client.hexists(DRAINING.format(ns=NS), mine):
            assert time.monotonic() - began < 10, "the hook never marked the replica draining"
            time.sleep(0.05)
        assert hook.poll() is None  # still waiting: streams are in flight to it
    _, stderr = hook.communicate(timeout=60)
    waited = time.monotonic() - began
    marked_at = len(load.served)  # requests routed before the mark may still finish
    assert hook.returncode == 0, stderr
    assert f"{mine} drained" in stderr and "0 left in flight" in stderr, stderr
    assert not client.hexists(DRAINING.format(ns=NS), other)
    assert Drainer(client, NS, mine).in_flight() == 0
    time.sleep(0.5)
    after = load.served[marked_at:]
    sent, failed = load.finish()
    assert after and set(after) == {other}  # new requests went to the other replica only
    assert failed == 0 and sent > 10 and waited > 0.5


def test_prestop_with_nothing_on_this_pod_exits_at_once(redis_server: LocalRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    _record(client, "r2", ELSEWHERE)
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "controlplane.backends.ray.prestop", DEPLOYMENT, "--host", HERE,
         "--redis-url", redis_server.url, "--namespace", NS],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    assert f"no replica of {DEPLOYMENT} on {HERE}" in done.stderr
    assert time.monotonic() - began < 30
    assert client.hlen(DRAINING.format(ns=NS)) == 0
