"""Overflow demand: requests the routers sent to overflow endpoints count toward the local
replicas' demand (policy rule, signals from raw Redis hashes, record and metrics)."""

from __future__ import annotations

import json
import math

from controlplane.autoscale.policy import (
    DOWN,
    HOLD,
    UP,
    PolicyConfig,
    PolicyState,
    ReplicaSignal,
    Signals,
    decide,
)
from controlplane.autoscale.record import decision_record
from controlplane.autoscale.signals import overflow_inflight
from controlplane.router.exposition import render_autoscale
from controlplane.router.external import ExternalEndpoint

CONFIG = PolicyConfig(
    min_replicas=1,
    max_replicas=4,
    target_ongoing_requests=8,
    upscale_delay_s=5,
    downscale_delay_s=60,
    upscale_cooldown_s=30,
    downscale_cooldown_s=120,
)
SATURATED_AT = 8  # router.overflow's saturation point, here equal to the policy's target


def saturated(n: int) -> tuple[ReplicaSignal, ...]:
    """`n` local replicas held at the saturation point by overflow (the engine agrees)."""
    return tuple(
        ReplicaSignal(f"r{i}", running=SATURATED_AT, inflight=SATURATED_AT) for i in range(n)
    )


def settle(signals: Signals, current: int, delay_s: float) -> list:
    """Decisions at the first reading and once the stabilisation window has passed."""
    first = decide(signals, current, PolicyState(), CONFIG, 100.0)
    return [first, decide(signals, current, first.state, CONFIG, 100.0 + delay_s)]


def test_local_replicas_held_at_saturation_alone_do_not_ask_for_more() -> None:
    # The problem: 2 replicas at 8 in flight each, the excess on the hosted API. Local
    # ongoing per replica (8) equals the target, so without overflow nothing asks more.
    _, late = settle(Signals(saturated(2)), 2, CONFIG.upscale_delay_s)
    assert (late.direction, late.desired, late.reason) == (HOLD, 2, "steady")


def test_overflow_in_flight_counts_as_local_demand_and_scales_up() -> None:
    overflowed = 13
    signals = Signals(saturated(2), overflow_inflight=overflowed)
    first, late = settle(signals, 2, CONFIG.upscale_delay_s)
    # Rule: ongoing per local replica = (local + overflow) / local replicas -> replicas wanted.
    wanted = math.ceil((2 * SATURATED_AT + overflowed) / CONFIG.target_ongoing_requests)
    assert wanted == 4
    assert (first.direction, first.reason) == (HOLD, "stabilising:overflow_demand")
    assert (late.direction, late.desired, late.wanted, late.reason) == (
        UP,
        wanted,
        wanted,
        "overflow_demand",
    )


def test_overflow_demand_is_bounded_by_max_replicas() -> None:
    signals = Signals(saturated(4), overflow_inflight=500)
    decision = decide(signals, 4, PolicyState(), CONFIG, 100.0)
    assert (decision.direction, decision.desired, decision.reason) == (HOLD, 4, "at_max")


def test_no_scale_down_while_requests_are_on_overflow() -> None:
    # 3 idle-looking replicas (stale engine snapshot) but one request still on overflow.
    quiet = tuple(ReplicaSignal(f"r{i}") for i in range(3))
    _, late = settle(Signals(quiet, overflow_inflight=1), 3, CONFIG.downscale_delay_s)
    assert late.direction == HOLD
    _, drained = settle(Signals(quiet), 3, CONFIG.downscale_delay_s)
    assert (drained.direction, drained.reason) == (DOWN, "low_load")


def test_no_local_reading_holds_even_with_overflow_in_flight() -> None:
    for signals in (None, Signals((), overflow_inflight=40)):
        decision = decide(signals, 2, PolicyState(), CONFIG, 100.0)
        assert (decision.direction, decision.desired, decision.reason) == (HOLD, 2, "no_signal")


def test_local_demand_keeps_its_own_reason_when_overflow_adds_nothing() -> None:
    # 42 / 8 -> 6 replicas; (42 + 1) / 8 -> still 6: the local signal names the decision.
    busy = tuple(ReplicaSignal(f"r{i}", inflight=21) for i in range(2))
    _, late = settle(Signals(busy, overflow_inflight=1), 2, CONFIG.upscale_delay_s)
    assert (late.direction, late.reason) == (UP, "ongoing_requests")


def external(name: str, role: str) -> tuple[str, str]:
    info = ExternalEndpoint(name, "http://127.0.0.1:1/v1", "glm", "hosted", role=role).info()
    return info.endpoint_id, info.to_json()


def test_only_overflow_endpoints_in_flight_are_counted() -> None:
    engine = json.dumps({"url": "http://127.0.0.1:2", "model": "glm", "group": "app"})
    endpoints = dict(
        [external("spill", "overflow"), external("spill2", "overflow"), external("share", "pool")]
    )
    endpoints["local"] = engine
    inflight = {"external/spill": 5, "external/spill2": 2, "external/share": 9, "local": 8}
    assert overflow_inflight(endpoints, inflight) == 7  # pool external and engine left out
    assert overflow_inflight(endpoints, {"external/share": 9}) == 0
    assert overflow_inflight({}, inflight) == 0  # unregistered ids are not overflow


def test_record_and_metrics_carry_the_overflow_count() -> None:
    decision = decide(Signals(saturated(2), overflow_inflight=13), 2, PolicyState(), CONFIG, 1.0)
    record = json.loads(decision_record(decision, 2, 4, 1.0, 13))
    assert record["overflow_inflight"] == 13
    assert record["reason"] == "stabilising:overflow_demand"
    assert json.loads(decision_record(decision, 2, 4, 1.0))["overflow_inflight"] == 0
    text = render_autoscale({"glm45": record}, {})
    assert 'glmctl_autoscale_overflow_inflight{deployment="glm45"} 13.0' in text
