"""Goodput from streamed traces (ops/benchmarks/goodput.py): the SLO test and the summary."""

from __future__ import annotations

import pytest

from ops.benchmarks.goodput import Slo, Trace, meets, percentile, summarise, winner
from ops.benchmarks.pd_goodput_bench import SHAPES, arrivals

SLO = Slo(ttft_s=1.0, itl_s=0.05)


def steady(sent: float = 0.0, ttft: float = 0.2, gap: float = 0.04, chunks: int = 10) -> Trace:
    """A request answered in `chunks` chunks of 2 tokens, `gap` apart."""
    return Trace(sent, 2 * chunks, [(sent + ttft + i * gap, 2) for i in range(chunks)])


def stall(trace: Trace, index: int, extra: float) -> None:
    """Delay chunk `index` and every later one by `extra` seconds."""
    trace.chunks[index:] = [(at + extra, n) for at, n in trace.chunks[index:]]


def test_a_chunk_of_k_tokens_counts_as_k_latencies_of_gap_over_k() -> None:
    trace = Trace(0.0, 5, [(0.1, 1), (0.2, 2), (0.5, 2)])
    assert trace.ttft() == pytest.approx(0.1)
    assert trace.itls() == pytest.approx([0.05, 0.05, 0.15, 0.15])
    assert trace.itls(scale=2.0) == pytest.approx([0.1, 0.1, 0.3, 0.3])


def test_meets_needs_ttft_itl_p99_and_every_token() -> None:
    assert meets(steady(), SLO)
    assert not meets(steady(ttft=1.5), SLO)
    assert not meets(steady(gap=0.12), SLO)  # 60 ms per token
    assert meets(steady(gap=0.04), SLO, scale=1.2)  # 24 ms per token in model time
    assert not meets(steady(ttft=0.6), SLO, scale=2.0)  # 1.2 s TTFT in model time
    short = steady()
    short.expected_tokens += 1
    assert not meets(short, SLO)
    failed = steady()
    failed.error = "HTTP 502"
    assert not meets(failed, SLO)
    assert not meets(Trace(0.0, 4), SLO)  # nothing came


def test_one_stall_passes_the_per_request_p99_and_many_do_not() -> None:
    # 200 gaps of 2 tokens: 400 latencies, so p99 tolerates 4 slow ones (2 stalled gaps).
    one_stall = steady(chunks=201)
    stall(one_stall, 100, 0.3)
    assert meets(one_stall, SLO)
    stalls = steady(chunks=201)
    for i in range(20, 200, 20):
        stall(stalls, i, 0.2)
    assert not meets(stalls, SLO)


def test_summarise_goodput_is_rate_times_attainment_per_gpu() -> None:
    traces = [steady(), steady(), steady(ttft=3.0), Trace(0.0, 4, error="HTTP 502")]
    point = summarise(traces, SLO, rate=4.0, gpus=8, scale=1.0)
    assert point.attainment == 0.5
    assert point.goodput_per_gpu == pytest.approx(4.0 * 0.5 / 8)
    assert point.failed == 1
    assert point.ttft_p99 == pytest.approx(3.0)
    assert point.itl_p99 == pytest.approx(0.02)


def test_winner_and_percentile() -> None:
    assert winner(0.5, 0.25) == "disaggregated"
    assert winner(0.25, 0.5) == "colocated"
    assert winner(0.5, 0.49) == "tie"
    assert winner(0.0, 0.0) == "tie"
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN


def test_arrivals_are_seeded_poisson_and_shapes_match_the_model_syntax() -> None:
    times = arrivals(2000, rate=4.0, seed=1)
    assert times == arrivals(2000, rate=4.0, seed=1) and times[0] == 0.0
    assert times == sorted(times)
    assert 2000 / times[-1] == pytest.approx(4.0, rel=0.1)
    assert SHAPES[0].workload_text(2.0) == "8192/256@2,ttft=2s,itl=50ms"
