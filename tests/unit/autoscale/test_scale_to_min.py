"""Return to the minimum: a low spell reaches the replicas the load needs by scale_to_min_s,
while the stabilisation window, the hysteresis band and the cooldowns still hold before."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

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
    scale_to_min_deadline,
)
from controlplane.errors import SpecError
from controlplane.spec import load_topology

# glm45-fp8-vllm's settings (the topology's defaults) with its 2..4 replicas.
CONFIG = PolicyConfig(min_replicas=2, max_replicas=4)


def idle(n: int, running: int = 0) -> Signals:
    return Signals(tuple(ReplicaSignal(f"r{i}", running=running) for i in range(n)))


def replay(config: PolicyConfig, current: int, state: PolicyState, start: float, end: float):
    """Tick once a second from `start` to `end` with an idle deployment; the count follows
    each decision (Serve applies it). Returns (time, count) at each change and the state."""
    changes = []
    now = start
    while now <= end:
        decision = decide(idle(current), current, state, config, now)
        state = decision.state
        if decision.desired != current:
            changes.append((now, decision.desired, decision.reason))
            current = decision.desired
        now += 1.0
    return changes, current, state


def test_idle_after_a_step_is_at_min_by_scale_to_min_s() -> None:
    # The measured case: 4 replicas, scaled up at t=0; the load ends at t=100.
    state = PolicyState(last_up=0.0)
    changes, final, _ = replay(CONFIG, 4, state, 100.0, 1000.0)
    assert final == 2
    times = [t for t, _, _ in changes]
    assert times[-1] <= 100.0 + CONFIG.scale_to_min_s
    # Before the deadline: one replica after the window and the cooldown since the up
    # (max(100 + 180, 0 + 300) = 300); then the deadline takes the rest at once.
    assert changes == [(300.0, 3, "low_load"), (400.0, 2, "scale_to_min")]


def test_before_it_existed_the_same_spell_took_one_cooldown_per_replica() -> None:
    # The deadline out of reach reproduces the old pacing: 4 -> 2 takes 300 s + 300 s.
    slow = replace(CONFIG, scale_to_min_s=10_000.0)
    changes, final, _ = replay(slow, 4, PolicyState(last_up=0.0), 100.0, 1000.0)
    assert [(t, n) for t, n, _ in changes] == [(300.0, 3), (600.0, 2)]
    assert final == 2


def test_deadline_goes_to_what_the_load_needs_not_blindly_to_min() -> None:
    config = replace(CONFIG, min_replicas=1, max_replicas=6, scale_to_min_s=200.0)
    # 6 replicas carry 12 running: fits on 2 (6 <= 8 * 0.9), not on 1 (12 > 7.2).
    signals = Signals(tuple(ReplicaSignal(f"r{i}", running=2) for i in range(6)))
    state = decide(signals, 6, PolicyState(last_up=0.0), config, 1000.0).state
    assert state.low_since == 1000.0
    decision = decide(signals, 6, state, config, 1200.0)
    assert (decision.direction, decision.desired, decision.reason) == (DOWN, 2, "scale_to_min")


def test_deadline_never_cuts_the_stabilisation_window() -> None:
    config = replace(CONFIG, scale_to_min_s=30.0, downscale_delay_s=180.0)
    state = PolicyState(low_since=50.0)
    assert scale_to_min_deadline(state, config) == 230.0
    assert scale_to_min_deadline(PolicyState(), config) is None


def test_a_break_in_the_low_spell_restarts_the_deadline() -> None:
    busy = Signals(tuple(ReplicaSignal(f"r{i}", running=8) for i in range(4)))  # 32 = 4 x 8
    state = decide(idle(4), 4, PolicyState(), CONFIG, 0.0).state
    assert state.low_since == 0.0
    state = decide(busy, 4, state, CONFIG, 250.0).state  # inside the band: holds, spell over
    assert state.low_since is None
    again = decide(idle(4), 4, state, CONFIG, 260.0)
    assert again.state.low_since == 260.0
    late = decide(idle(4), 4, again.state, CONFIG, 300.0)  # 300 s after the first spell began
    assert late.direction == HOLD and late.reason.startswith("stabilising")


def test_no_signal_and_scale_up_end_the_spell() -> None:
    state = PolicyState(low_since=0.0, pending=DOWN)
    assert decide(None, 4, state, CONFIG, 10.0).state.low_since is None
    hot = Signals(tuple(ReplicaSignal(f"r{i}", running=8, waiting=9) for i in range(3)))
    decision = decide(hot, 3, state, CONFIG, 10.0)
    assert decision.state.pending == UP and decision.state.low_since is None


def test_after_the_jump_the_load_sits_inside_the_band_no_flap() -> None:
    # 4 replicas with 12 running in all: the jump goes to 2 (6 each <= 7.2), and on 2 the
    # same load asks no scale-up (12 / 8 -> 2), so the count stays.
    config = replace(CONFIG, min_replicas=1)
    load = Signals(tuple(ReplicaSignal(f"r{i}", running=3) for i in range(4)))
    state = decide(load, 4, PolicyState(), config, 0.0).state
    jump = decide(load, 4, state, config, 300.0)
    assert (jump.desired, jump.reason) == (2, "scale_to_min")
    after = Signals(tuple(ReplicaSignal(f"r{i}", running=6) for i in range(2)))
    held = decide(after, 2, jump.state, config, 301.0)
    assert held.direction == HOLD and held.reason == "steady"


def test_state_with_the_spell_round_trips_and_old_states_load() -> None:
    state = PolicyState(DOWN, 3.0, 1.0, 2.0, 3.0)
    assert PolicyState.from_dict(state.to_dict()) == state
    old = {"pending": "down", "pending_since": 3.0, "last_up": 1.0, "last_down": None}
    assert PolicyState.from_dict(old).low_since is None


def _spec(tmp_path: Path, auto: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(
        "model: glm-4.5\nprecision: fp8\ngpus: {type: H200, count: 4}\n"
        f"replicas: {{min: 1, max: 3}}\nautoscaling:\n{auto}"
    )
    return path


def test_spec_field_flows_into_the_plan_policy(tmp_path: Path) -> None:
    topology = load_topology(_spec(tmp_path, "  scale_to_min_s: 240\n"))
    assert topology.spec.autoscaling is not None
    assert topology.spec.autoscaling.scale_to_min_s == 240
    assert topology.spec.autoscaling.model_dump()["scale_to_min_s"] == 240
    default = load_topology(_spec(tmp_path, "  target_ongoing_requests: 4\n"))
    assert "scale_to_min_s" not in default.spec.model_dump()["autoscaling"]  # renders as before


def test_spec_refuses_a_deadline_inside_the_window(tmp_path: Path) -> None:
    path = _spec(tmp_path, "  downscale_delay_s: 400\n")  # default scale_to_min_s 300 < 400
    with pytest.raises(SpecError) as caught:
        load_topology(path)
    message = str(caught.value)
    assert "scale_to_min_s" in message and "To fix" in message and "400" in message
