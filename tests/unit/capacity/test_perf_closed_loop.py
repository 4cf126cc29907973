"""The benchmark client's closed loop replayed through the model (`controlplane.capacity.replay`).

Expected values come from the workload's definition (uniform lengths on [1, L], N prompts at
C clients) and from the model's own step times, not from published figures.
"""

from __future__ import annotations

import statistics

import pytest

from controlplane.capacity.performance import performance_model
from controlplane.capacity.replay import PREFILL_BUDGET_TOKENS, Workload, replay
from controlplane.capacity.steady_state import steady_state
from ops.calibration.held_out import HELD_OUT
from ops.calibration.perf_cases import topology_of


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return performance_model(topology_of(HELD_OUT[0]))


def test_uniform_lengths_have_the_random_datasets_mean_and_range() -> None:
    requests = Workload(100, 500, 1000, 1000, uniform=True).requests()
    inputs = [isl for isl, _ in requests]
    assert min(inputs) >= 1 and max(inputs) <= 1000
    assert statistics.fmean(inputs) == pytest.approx(500.5, rel=0.01)
    assert Workload(4, 8, 1000, 200).requests() == [(1000, 200)] * 8
    assert requests == Workload(100, 500, 1000, 1000, uniform=True).requests()  # deterministic


def test_the_drain_lowers_mean_concurrency_and_a_long_run_does_not(model) -> None:  # type: ignore[no-untyped-def]
    short = replay(model, Workload(16, 32, 200, 200, uniform=True))
    long = replay(model, Workload(16, 640, 200, 200))
    assert short.mean_concurrency < 15.0
    assert long.mean_concurrency == pytest.approx(16, rel=0.05)


def test_equal_lengths_run_in_lock_step_so_prefills_leave_tpot(model) -> None:  # type: ignore[no-untyped-def]
    # All C requests start, prefill and finish together: every step is a pure decode step.
    run = replay(model, Workload(8, 400, 500, 300))
    assert run.mean_tpot_s == pytest.approx(model.decode_step_seconds(8, 8 * 650), rel=0.01)


def test_spread_lengths_meet_the_steady_state_at_the_mean_lengths(model) -> None:  # type: ignore[no-untyped-def]
    run = replay(model, Workload(8, 800, 1000, 600, uniform=True))
    state = steady_state(model, 8, 500, 300)
    assert run.mean_tpot_s == pytest.approx(state.tpot_s, rel=0.05)
    assert run.output_tokens_per_s == pytest.approx(state.output_tokens_per_s, rel=0.05)


class Spy:
    """The model's step times, recording each prefill pass and decode batch it was asked."""

    tokens_per_step = 1.0

    def __init__(self, model) -> None:  # type: ignore[no-untyped-def]
        self.model = model
        self.passes: list[int] = []
        self.batches: list[int] = []

    def prefill_seconds(self, tokens: int) -> float:
        self.passes.append(tokens)
        return float(self.model.prefill_seconds(tokens))

    def decode_step_seconds(self, batch: int, context: int) -> float:
        self.batches.append(batch)
        return float(self.model.decode_step_seconds(batch, context))


def test_prefill_passes_respect_the_budget(model) -> None:  # type: ignore[no-untyped-def]
    spy = Spy(model)
    replay(spy, Workload(32, 64, 3000, 50))  # type: ignore[arg-type]
    assert sum(spy.passes) == 64 * 3000
    assert max(spy.passes) <= max(PREFILL_BUDGET_TOKENS, 3000)


def test_one_client_sees_the_decode_step_as_its_inter_token_latency(model) -> None:  # type: ignore[no-untyped-def]
    """Alone, a request's tokens come one decode step apart; the median gap is the step at the
    middle of its context."""
    run = replay(model, Workload(1, 3, 1000, 201))
    middle = model.decode_step_seconds(1, 1000 + 100)
    assert run.median_itl_s == pytest.approx(middle, rel=1e-3)
    assert len(run.tpots) == 3


def test_prefill_passes_stretch_the_tail_not_the_median(model) -> None:  # type: ignore[no-untyped-def]
    """With short answers prompts interrupt few of a request's steps: the median gap stays a
    decode step while the mean TPOT carries the prefill passes."""
    run = replay(model, Workload(16, 160, 1000, 200))
    step = model.decode_step_seconds(16, 16 * 1100)
    assert run.median_itl_s == pytest.approx(step, rel=0.05)
    assert run.mean_tpot_s > run.median_itl_s


def test_the_engines_running_cap_holds_the_batch_and_queues_the_rest(model) -> None:  # type: ignore[no-untyped-def]
    capped, free = Spy(model), Spy(model)
    queued = replay(capped, Workload(12, 48, 200, 100, max_running=4))  # type: ignore[arg-type]
    open_ = replay(free, Workload(12, 48, 200, 100))  # type: ignore[arg-type]
    assert max(capped.batches) == 4 and max(free.batches) == 12
    # Each wave of 4 waits for the waves ahead of it: 12 clients, 3 waves in flight.
    assert queued.mean_ttft_s > 1.5 * queued.median_tpot_s * 99
    assert open_.mean_ttft_s < queued.mean_ttft_s / 5
