"""The Serve policy adapter: holds on no data, answers its last decision between readings."""

from __future__ import annotations

from types import SimpleNamespace

from controlplane.autoscale.policy import PolicyState, ReplicaSignal, Signals
from controlplane.autoscale.serve_policy import REDIS_BACKOFF_S, STATE_KEY, EngineSignalPolicy

CONFIG = {"min_replicas": 1, "max_replicas": 4, "upscale_delay_s": 0, "upscale_cooldown_s": 0}


class FakeReader:
    """Stands in for the Redis reader: returns fixed signals, counts readings."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals
        self.reads = 0
        self.client = None  # write_decision fails on it: the decision must stand anyway

    def read(self) -> Signals:
        self.reads += 1
        return self.signals


def ctx(target: int, state: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(target_num_replicas=target, policy_state=state or {})


def test_unreachable_redis_holds_the_count() -> None:
    policy = EngineSignalPolicy("redis://127.0.0.1:1/0", "ns", "d", "app", CONFIG)
    desired, state = policy(ctx(3))
    assert desired == 3
    assert state[STATE_KEY]["pending"] == "hold"
    assert policy.next_read >= REDIS_BACKOFF_S  # backs off instead of retrying every tick


def test_reads_once_per_poll_and_resumes_its_state() -> None:
    policy = EngineSignalPolicy("", "ns", "d", "app", CONFIG, poll_s=60)
    hot = Signals((ReplicaSignal("a", running=8, inflight=30),))
    policy.reader = FakeReader(hot)
    saved = PolicyState(last_up=0.0).to_dict()
    desired, state = policy(ctx(1, {STATE_KEY: saved, "serve_internal": 1}))
    assert desired == 2 and state["serve_internal"] == 1  # Serve's own keys kept
    assert policy(ctx(2))[0] == 2  # between readings: the last decision
    assert policy.reader.reads == 1
    assert isinstance(policy.state, PolicyState) and policy.state.last_up > 0
