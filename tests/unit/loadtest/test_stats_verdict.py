"""Statistics from raw samples, time scaling, goodput and the SLO verdict."""

from __future__ import annotations

import math
import random

import pytest

from controlplane.errors import UserError
from controlplane.loadtest.sse import RequestSample
from controlplane.loadtest.stats import percentile, summarise, time_series
from controlplane.loadtest.verdict import judge, parse_slo
from controlplane.spec.models import SloSpec


def _sample(ttft: float, gap: float, tokens: int, start: float = 0.0, ok: bool = True,
            kind: str = "chat") -> RequestSample:  # fmt: skip
    return RequestSample(
        kind=kind, start=start, ok=ok, error=None if ok else "timeout: slow",
        ttft=ttft, e2e=ttft + gap * (tokens - 1), itl=[gap] * (tokens - 1),
        output_tokens=tokens, prompt_tokens=100,
    )  # fmt: skip


def test_percentile_interpolates_like_numpy() -> None:
    values = [random.Random(4).random() for _ in range(101)]
    ordered = sorted(values)
    assert percentile(values, 50) == ordered[50]
    assert percentile([1.0, 2.0, 3.0, 4.0], 25) == pytest.approx(1.75)  # numpy: 1.75
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == pytest.approx(3.97)
    assert math.isnan(percentile([], 50))


def test_summary_counts_tokens_failures_and_goodput() -> None:
    slo = SloSpec(ttft_p99=0.5, itl_p99=0.05)
    samples = [
        _sample(0.2, 0.02, 11),  # good
        _sample(0.9, 0.02, 11),  # TTFT too slow
        _sample(0.2, 0.08, 11),  # TPOT too slow
        _sample(0.2, 0.02, 11, ok=False),
    ]
    s = summarise(samples, duration_s=10.0, slo=slo)
    assert (s["requests"], s["completed"], s["failed"]) == (4, 3, 1)
    assert s["failures_by_cause"] == {"timeout": 1}
    assert s["availability"] == pytest.approx(0.75)
    assert s["goodput_share"] == pytest.approx(0.25)
    assert s["output_token_throughput"] == pytest.approx(33 / 10)
    assert s["goodput_token_throughput"] == pytest.approx(11 / 10)
    assert s["itl_s"]["count"] == 30 and s["tpot_s"]["p50"] == pytest.approx(0.02)


def test_time_scale_reports_model_seconds() -> None:
    slo = SloSpec()
    wall = summarise([_sample(0.02, 0.002, 11)], duration_s=1.0, slo=slo, time_scale=10.0)
    assert wall["ttft_s"]["p50"] == pytest.approx(0.2)
    assert wall["itl_s"]["p99"] == pytest.approx(0.02)
    assert wall["output_token_throughput"] == pytest.approx(1.1)


def test_time_series_bins_by_start_and_finish() -> None:
    samples = [_sample(0.1, 0.01, 11, start=t) for t in (0.0, 0.5, 2.2)]
    rows = time_series(samples, bin_s=1.0)
    assert [r["requests"] for r in rows] == [2.0, 0.0, 1.0]
    assert sum(r["output_tokens_per_s"] for r in rows) == pytest.approx(33.0)


def test_parse_slo_lays_pairs_over_the_base() -> None:
    base = SloSpec(ttft_p99=3.0, itl_p99=0.1, availability=0.99)
    slo = parse_slo("ttft_p99=500ms, itl_p99=0.02", base)
    assert (slo.ttft_p99, slo.itl_p99, slo.availability) == (0.5, 0.02, 0.99)
    assert parse_slo(None) == SloSpec()


@pytest.mark.parametrize("text", ["ttft=2s", "ttft_p99", "ttft_p99=fast", "availability=2"])
def test_parse_slo_rejects_with_a_fix(text: str) -> None:
    with pytest.raises(UserError, match="To fix"):
        parse_slo(text)


def test_verdict_passes_and_fails_per_objective() -> None:
    samples = [_sample(0.1 + i / 1000, 0.02, 20) for i in range(100)]
    summary = summarise(samples, 10.0, SloSpec())
    loose = judge(summary, SloSpec(ttft_p99=1.0, itl_p99=0.05))
    assert loose.passed and loose.goodput_share == 1.0
    tight = judge(summary, SloSpec(ttft_p99=0.25, itl_p99=0.01))
    assert not tight.passed
    assert [r.passed for r in tight.rows] == [True, False, True]
    assert tight.rows[1].measured == pytest.approx(0.02)


def test_no_completed_request_fails() -> None:
    summary = summarise([_sample(0.1, 0.01, 5, ok=False)], 1.0, SloSpec())
    verdict = judge(summary, SloSpec())
    assert not verdict.passed and not any(r.passed for r in verdict.rows)
