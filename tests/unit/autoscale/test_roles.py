"""Per-pool policies: the role picks the signals (prefill: queue and TTFT; decode: KV usage,
running and ITL); each pool's policy reads only its own endpoints."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

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
from controlplane.autoscale.record import record_key
from controlplane.autoscale.roles import DECODE, PREFILL, ROLES, role_policy
from controlplane.autoscale.serve_policy import serve_autoscaling_config
from controlplane.autoscale.signals import replica_signals
from controlplane.planner.models import AutoscalingPlan

BASE = PolicyConfig(min_replicas=1, max_replicas=8, upscale_delay_s=0, upscale_cooldown_s=0)
PREFILL_CFG = replace(BASE, role=PREFILL)
DECODE_CFG = replace(BASE, role=DECODE)


def pool(n: int, **load: float) -> tuple[ReplicaSignal, ...]:
    return tuple(ReplicaSignal(f"r{i}", **load) for i in range(n))  # type: ignore[arg-type]


def up(signals: Signals, current: int, config: PolicyConfig):
    return decide(signals, current, PolicyState(), config, 0.0)


def test_every_role_is_registered_and_an_unknown_one_names_them() -> None:
    assert set(ROLES) == {"", PREFILL, DECODE}
    with pytest.raises(ValueError, match="'prefill'"):
        role_policy("prefil")


def test_full_kv_scales_decode_but_not_prefill() -> None:
    # Two replicas at 95 % KV, 2 running each: decode needs 1.9 / 0.8 -> 3 replicas; a
    # prefill pool's KV is in flight to decode and asks nothing.
    signals = Signals(pool(2, running=2, kv_usage=0.95))
    decode = up(signals, 2, DECODE_CFG)
    assert (decode.direction, decode.desired, decode.reason) == (UP, 3, "kv_usage")
    assert up(signals, 2, PREFILL_CFG).direction == HOLD


def test_queued_prefills_scale_prefill_but_not_decode() -> None:
    # 2 prefill replicas with 30 queued each: 60 / 8 -> 8 wanted, rate-limited to 4.
    signals = Signals(pool(2, running=2, waiting=28, kv_usage=0.1))
    prefill = up(signals, 2, PREFILL_CFG)
    assert (prefill.direction, prefill.desired, prefill.reason) == (UP, 4, "prefill_queue")
    # Decode counts running sequences only (the waiting ones are prealloc, not decode load).
    assert up(signals, 2, DECODE_CFG).direction == HOLD


def test_ttft_drives_prefill_itl_drives_decode() -> None:
    slow_first = Signals(pool(2, running=1), ttft_p99_s=5.0)
    assert up(slow_first, 2, PREFILL_CFG).reason == "ttft_slo"
    assert up(slow_first, 2, DECODE_CFG).direction == HOLD
    slow_tokens = Signals(pool(2, running=1), itl_p99_s=0.2)
    decode = up(slow_tokens, 2, DECODE_CFG)
    assert (decode.direction, decode.desired, decode.reason) == (UP, 3, "itl_slo")
    assert up(slow_tokens, 2, PREFILL_CFG).direction == HOLD


def test_decode_holds_while_itl_is_near_its_slo_and_steps_down_when_calm() -> None:
    near = Signals(pool(3, running=1), itl_p99_s=0.048)  # above 0.05 * 0.9
    assert decide(near, 3, PolicyState(), DECODE_CFG, 0.0).direction == HOLD
    assert decide(near, 3, PolicyState(), DECODE_CFG, 0.0).reason == "steady"
    calm = Signals(pool(3, running=1, kv_usage=0.2), itl_p99_s=0.02)
    first = decide(calm, 3, PolicyState(), DECODE_CFG, 0.0)
    assert first.state.pending == DOWN and first.wanted == 1
    later = decide(calm, 3, first.state, DECODE_CFG, DECODE_CFG.scale_to_min_s)
    assert (later.direction, later.desired) == (DOWN, 1)


def test_each_pool_reads_only_its_own_endpoints() -> None:
    def endpoint(pd: str) -> str:
        info = {"group": "app", "model": "m"} | ({"pd": pd} if pd else {})
        return json.dumps(info)

    endpoints = {"p0": endpoint("prefill"), "d0": endpoint("decode"), "d1": endpoint("decode")}
    endpoints["c0"] = endpoint("")
    load = {e: json.dumps({"running": 1, "ts": 100.0}) for e in endpoints}
    seen = {
        role: [
            r.endpoint_id
            for r in replica_signals(endpoints, {}, load, set(), {}, "app", 100.0, role)
        ]
        for role in ("", PREFILL, DECODE)
    }
    assert seen == {"": ["c0"], PREFILL: ["p0"], DECODE: ["d0", "d1"]}


def test_role_reaches_the_policy_through_serve_config_only_for_pd() -> None:
    plan = AutoscalingPlan(
        min_replicas=1,
        max_replicas=4,
        initial_replicas=1,
        target_ongoing_requests=8,
        upscale_delay_s=5,
        downscale_delay_s=60,
        scale_to_min_s=90,
    )
    colocated = serve_autoscaling_config(plan.model_dump(), "", "ns", "d", "app")
    config = colocated["policy"]["policy_kwargs"]["config"]
    assert "role" not in config and PolicyConfig.from_dict(config).scale_to_min_s == 90
    decode = serve_autoscaling_config(plan.model_dump(), "", "ns", "d", "app", role=DECODE)
    assert PolicyConfig.from_dict(decode["policy"]["policy_kwargs"]["config"]).role == DECODE
    assert record_key("d", DECODE) == "d/decode" and record_key("d") == "d"


def test_plan_omits_new_fields_at_their_defaults() -> None:
    plan = AutoscalingPlan(
        min_replicas=1,
        max_replicas=4,
        initial_replicas=1,
        target_ongoing_requests=8,
        upscale_delay_s=5,
        downscale_delay_s=60,
    )
    assert "scale_to_min_s" not in plan.model_dump() and "itl_slo_s" not in plan.model_dump()
    assert replace_plan(plan, scale_to_min_s=90).model_dump()["scale_to_min_s"] == 90


def replace_plan(plan: AutoscalingPlan, **changes: float) -> AutoscalingPlan:
    return plan.model_copy(update=changes)
