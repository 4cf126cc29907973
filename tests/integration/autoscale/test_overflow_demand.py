"""Overflow demand as the autoscaler reads it, from real Redis and a real router.

1. Two routers publish their in-flight counts through the router's own refresh script
   (`RedisState.refresh`); `SignalReader` sums the overflow endpoints' counts across them,
   leaves a pool external out, and the policy asks for more local replicas on it.
2. One router, one simulated local replica saturated at 2 in flight, one simulated
   hosted API as overflow: with 6 streams held open, the reading the autoscaler takes
   holds 2 local and the other 4 as overflow in-flight (each the served-by headers' count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from controlplane.autoscale.policy import UP, PolicyConfig, PolicyState, decide
from controlplane.autoscale.signals import SignalReader
from controlplane.local.redis_server import LocalRedis
from controlplane.router.external import ExternalEndpoint
from controlplane.router.registry import register_endpoint, register_info
from controlplane.router.state import RedisState
from controlplane.spec import Topology
from tests.integration.router.conftest import Cluster
from tests.integration.router.helpers import chat_body, held_streams
from tests.integration.router.test_external import SATURATED_AT, make_setup

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
Factory = Callable[[LocalRedis, Topology], Cluster]
NS = "glmctl"
CONFIG = PolicyConfig(min_replicas=1, max_replicas=8, target_ongoing_requests=2)


def external(name: str, role: str) -> ExternalEndpoint:
    return ExternalEndpoint(name, "http://127.0.0.1:9/v1", "glm", "hosted", role=role)


async def test_signals_sum_overflow_in_flight_across_routers(redis_server: LocalRedis) -> None:
    url = redis_server.url
    register_endpoint(url, "local", "http://127.0.0.1:9", "glm", "g", "vllm", NS)
    for endpoint in (external("spill", "overflow"), external("share", "pool")):
        register_info(url, endpoint.info(), NS)
    routers = [RedisState(url, "r1"), RedisState(url, "r2")]
    reader = SignalReader(url, NS, "g")
    try:
        assert reader.read().overflow_inflight == 0  # no router has published yet
        counts = [
            {"local": 2, "external/spill": 3, "external/share": 5},
            {"local": 1, "external/spill": 4},
        ]
        for state, own in zip(routers, counts, strict=True):
            assert await state.refresh(own)  # the router's own script writes the hashes
        signals = reader.read()
        assert signals.overflow_inflight == 3 + 4  # pool external's 5 left out
        assert [(r.endpoint_id, r.inflight) for r in signals.replicas] == [("local", 3)]
        decision = decide(signals, 1, PolicyState(), CONFIG, 0.0)
        assert decision.wanted == 5  # ceil((3 + 7) / 2)
        assert decision.reason == "stabilising:overflow_demand"
        await routers[1].refresh({"local": 1})  # its overflow requests finished
        assert reader.read().overflow_inflight == 3
    finally:
        reader.close()
        for state in routers:
            await state.close()


def test_the_reading_holds_what_the_router_overflowed(
    redis_server: LocalRedis,
    topo: Topology,
    cluster_factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    setup = make_setup(cluster_factory(redis_server, topo), tmp_path, monkeypatch)
    streams = 6
    body = chat_body(setup.cluster.model, "long", max_tokens=300, ignore_eos=True, stream=True)
    reader = SignalReader(redis_server.url, NS, "g")  # the test cluster's endpoints: group g
    try:
        with held_streams(setup.url, body, streams) as served:
            time.sleep(0.5)  # the router publishes its in-flight counts every 0.1 s
            signals = reader.read()
        overflowed = served.count("external/hosted")
        print(f"\n{streams} streams: {served.count('local')} local, {overflowed} overflowed;"
              f" reading: overflow_inflight={signals.overflow_inflight}")  # fmt: skip
        assert overflowed >= streams - 2 * SATURATED_AT  # local held near its saturation point
        assert signals.overflow_inflight == overflowed
        assert [r.inflight for r in signals.replicas] == [served.count("local")]
        now = 0.0
        first = decide(signals, 1, PolicyState(), CONFIG, now)
        late = decide(signals, 1, first.state, CONFIG, now + CONFIG.upscale_delay_s)
        assert late.direction == UP
        assert late.wanted == -(-streams // CONFIG.target_ongoing_requests)  # ceil(6 / 2)
    finally:
        reader.close()
