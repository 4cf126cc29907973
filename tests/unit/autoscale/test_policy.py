"""The pure scaling policy: signals, hysteresis, stabilisation windows, cooldowns, bounds."""

from __future__ import annotations

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

CONFIG = PolicyConfig(
    min_replicas=1,
    max_replicas=4,
    target_ongoing_requests=8,
    target_kv_usage=0.8,
    max_waiting=5,
    ttft_slo_s=2.0,
    upscale_delay_s=5,
    downscale_delay_s=60,
    upscale_cooldown_s=30,
    downscale_cooldown_s=120,
    tolerance=0.1,
    max_scale_up_rate=2.0,
)


def replicas(n: int, **load: float) -> tuple[ReplicaSignal, ...]:
    return tuple(ReplicaSignal(f"r{i}", **load) for i in range(n))  # type: ignore[arg-type]


def run(signals: Signals, current: int, times: list[float], state: PolicyState | None = None):
    """Feed the same signals at each time; return the decisions."""
    state = state or PolicyState()
    out = []
    for now in times:
        decision = decide(signals, current, state, CONFIG, now)
        state = decision.state
        out.append(decision)
    return out


def test_ongoing_requests_over_target_scale_up_after_the_window() -> None:
    # 2 replicas carrying 24 ongoing each: 48 / 8 = 6 wanted, capped by max 4 and rate 2x.
    signals = Signals(replicas(2, running=8, waiting=0, inflight=24))
    first, early, late = run(signals, 2, [100.0, 104.0, 105.0])
    assert (first.direction, first.reason) == (HOLD, "stabilising:ongoing_requests")
    assert early.direction == HOLD
    assert (late.direction, late.desired, late.wanted) == (UP, 4, 4)
    assert late.reason == "ongoing_requests"


def test_step_up_limited_by_rate() -> None:
    config = replace(CONFIG, max_replicas=10, upscale_delay_s=0)
    signals = Signals(replicas(1, running=8, inflight=60))  # 60 / 8 -> 8 wanted
    decision = decide(signals, 1, PolicyState(), config, 0.0)
    assert (decision.desired, decision.wanted) == (2, 8)


def test_kv_usage_drives_scale_up_when_requests_are_few() -> None:
    # Few, long requests: 3 ongoing per replica but KV full (0.95 each): 1.9 / 0.8 -> 3.
    signals = Signals(replicas(2, running=3, kv_usage=0.95))
    decision = run(signals, 2, [0.0, 10.0])[-1]
    assert (decision.direction, decision.desired, decision.reason) == (UP, 3, "kv_usage")


def test_waiting_requests_add_one_replica() -> None:
    signals = Signals(replicas(2, running=2, waiting=6))  # 16 ongoing -> 2, but 6 > 5 waiting
    decision = run(signals, 2, [0.0, 10.0])[-1]
    assert (decision.desired, decision.reason) == (3, "waiting_requests")


def test_ttft_over_slo_adds_one_replica() -> None:
    signals = Signals(replicas(2, running=4), ttft_p99_s=3.5)
    decision = run(signals, 2, [0.0, 10.0])[-1]
    assert (decision.desired, decision.reason) == (3, "ttft_slo")


def test_signal_that_drops_during_window_restarts_it() -> None:
    hot = Signals(replicas(2, running=8, inflight=24))
    calm = Signals(replicas(2, running=6))
    state = PolicyState()
    for now, signals in [(0.0, hot), (3.0, calm), (4.0, hot), (8.0, hot)]:
        decision = decide(signals, 2, state, CONFIG, now)
        state = decision.state
    assert decision.direction == HOLD  # hot again only since t=4: window ends at t=9
    assert decide(hot, 2, state, CONFIG, 9.0).direction == UP


def test_upscale_cooldown() -> None:
    hot = Signals(replicas(2, running=8, inflight=24))
    state = PolicyState(last_up=100.0)
    decisions = run(hot, 2, [101.0, 110.0, 130.0], state)
    assert [d.direction for d in decisions] == [HOLD, HOLD, UP]
    assert decisions[1].reason == "cooldown:ongoing_requests"


def test_hysteresis_band_holds() -> None:
    # 3 replicas, 14 ongoing: up needs > 24, down needs 14 / 2 = 7 <= 8 * 0.9 = 7.2 -> down.
    # 15 ongoing: 15 / 2 = 7.5 > 7.2 -> hold (inside the band), although 15 / 8 -> 2.
    assert run(Signals(replicas(1, running=14)), 3, [0.0])[0].state.pending == DOWN
    held = run(Signals(replicas(1, running=15)), 3, [0.0, 1000.0])
    assert all(d.direction == HOLD and d.reason == "steady" for d in held)


def test_scale_down_one_at_a_time_after_window_and_cooldown() -> None:
    idle = Signals(replicas(4, running=1))
    state = PolicyState(last_up=0.0)
    decisions = run(idle, 4, [10.0, 70.0, 119.0, 120.0], state)
    assert [d.direction for d in decisions] == [HOLD, HOLD, HOLD, DOWN]
    assert decisions[1].reason == "cooldown:low_load"
    assert decisions[-1].desired == 3 and decisions[-1].reason == "low_load"


def test_no_scale_down_while_requests_wait_or_ttft_misses() -> None:
    waiting = Signals(replicas(3, running=1, waiting=1))
    slow = Signals(replicas(3, running=1), ttft_p99_s=1.9)  # above 2.0 * 0.9
    for signals in (waiting, slow):
        decision = run(signals, 3, [0.0, 1000.0])[-1]
        assert decision.direction == HOLD


def test_bounds() -> None:
    signals = Signals(replicas(1, running=100))
    assert decide(signals, 0, PolicyState(), CONFIG, 0.0).desired == 1  # below min: at once
    assert decide(signals, 6, PolicyState(), CONFIG, 0.0).desired == 4  # above max: at once
    at_max = run(signals, 4, [0.0, 100.0])[-1]
    assert (at_max.direction, at_max.reason) == (HOLD, "at_max")
    idle = run(Signals(replicas(1)), 1, [0.0, 1000.0])[-1]
    assert (idle.direction, idle.reason) == (HOLD, "steady")


def test_no_signal_holds() -> None:
    for signals in (None, Signals()):
        decision = decide(signals, 3, PolicyState(pending=UP), CONFIG, 0.0)
        assert (decision.desired, decision.direction, decision.reason) == (3, HOLD, "no_signal")
        assert decision.state.pending == HOLD


@pytest.mark.parametrize("state", [PolicyState(), PolicyState(UP, 3.0, 1.0, 2.0)])
def test_state_round_trips(state: PolicyState) -> None:
    assert PolicyState.from_dict(state.to_dict()) == state
