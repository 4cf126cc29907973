"""Cross-check against engine metrics (rendered by the simulator's own code), and plots."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from controlplane.engines.sim.metrics import EngineGauges, EngineMetrics, render
from controlplane.loadtest.crosscheck import GENERATED, TTFT, counter, cross_check, histogram
from controlplane.loadtest.plots import cdf_figure, cdf_plot, pareto_front, pareto_plot
from controlplane.spec import EngineKind

GAUGES = EngineGauges(0, 0, 0.0, 0, 1000, 0.0, 0.0)


def _metrics(ttfts: list[float], tokens: int, flavor: EngineKind) -> str:
    m = EngineMetrics()
    for value in ttfts:
        m.log_ttft(value, value)
    m.generation_tokens = tokens  # vLLM's total
    if tokens:  # SGLang counts by `is_streaming`, when a request finishes
        m.log_finished(stream=True, prompt=0, generated=tokens, e2e=1.0)
    return render(flavor, "glm-4.5-fp8", m, GAUGES)


@pytest.mark.parametrize("flavor", [EngineKind.VLLM, EngineKind.SGLANG])
def test_histogram_quantile_and_mean(flavor: EngineKind) -> None:
    ttfts = [0.3 + 0.4 * i / 99 for i in range(100)]  # uniform over 0.3..0.7
    hist = histogram(_metrics(ttfts, 10, flavor), TTFT)
    assert hist is not None and hist.count == 100
    assert hist.mean == pytest.approx(0.5)
    # Buckets 0.25 / 0.5 / 0.75: the median falls at the 0.5 bound.
    assert hist.quantile(0.5) == pytest.approx(0.5, abs=0.02)
    assert counter(_metrics([], 1234, flavor), GENERATED) == 1234


def test_cross_check_uses_the_difference_of_two_scrapes() -> None:
    before = [_metrics([5.0] * 50, 1000, EngineKind.VLLM)]  # an earlier run's traffic
    run = [0.09, 0.1, 0.11] * 10
    after = [_metrics([5.0] * 50 + run, 1000 + 600, EngineKind.VLLM)]
    summary = {"ttft_s": {"p50": 0.1, "mean": 0.1}, "total_output_tokens": 600, "completed": 30}
    checks = {(c.name, c.source): c for c in cross_check(summary, before, after, run)}
    assert checks[("output_tokens", "engine counter")].reference == 600
    assert checks[("ttft_mean_s", "engine histogram")].reference == pytest.approx(0.1)
    assert checks[("ttft_p50_s", "simulator accounting")].reference == pytest.approx(0.1)
    assert all(c.passed for c in checks.values())
    off = cross_check({**summary, "total_output_tokens": 800}, before, after)
    assert not next(c for c in off if c.name == "output_tokens").passed


def test_trtllm_json_scrapes_give_no_engine_checks() -> None:
    """TensorRT-LLM's /metrics (JSON iteration stats) has no TTFT histogram and no token
    counter: the engine checks are left out, not failed against zeros."""
    import json

    from controlplane.engines.sim.metrics import KvBlocks, iteration_stats

    entry = iteration_stats(3, GAUGES, KvBlocks(10, 2, 16), 16, EngineMetrics())
    before, after = ["[]"], [json.dumps([entry])]
    summary = {"ttft_s": {"p50": 0.1, "mean": 0.1}, "total_output_tokens": 600, "completed": 30}
    checks = cross_check(summary, before, after, [0.1] * 30)
    assert {c.source for c in checks} == {"simulator accounting"}
    assert all(c.passed for c in checks)


def _pixel_spread(path: Path) -> float:
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    return float(pixels.std())


def test_plots_hold_data(tmp_path: Path) -> None:
    empty = cdf_plot([], None, "empty", tmp_path / "empty.png")
    full = cdf_plot([0.01 * i for i in range(100)], 0.5, "ttft", tmp_path / "ttft.png")
    assert _pixel_spread(full) > 0.05 and _pixel_spread(empty) > 0
    points = [
        {"label": "a", "tokens_per_s_per_gpu": 100.0, "tokens_per_s_per_user": 50.0},
        {"label": "b", "tokens_per_s_per_gpu": 200.0, "tokens_per_s_per_user": 30.0},
        {"label": "c", "tokens_per_s_per_gpu": 150.0, "tokens_per_s_per_user": 20.0},
    ]
    assert [p["label"] for p in pareto_front(points)] == ["a", "b"]
    assert _pixel_spread(pareto_plot(points, tmp_path / "pareto.png")) > 0.05


def test_cdf_is_on_a_log_axis_with_the_slo_and_percentile_marks(tmp_path: Path) -> None:
    """A loose SLO (30 s) over 20-200 ms samples: on a linear axis from 0 the samples took
    under 1 % of the width; on the log axis they take a visible share of it."""
    import matplotlib.pyplot as plt

    samples = [0.02 + 0.18 * i / 99 for i in range(100)]  # 20 ms .. 200 ms
    fig = cdf_figure(samples, 30.0, "ttft")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    low, high = ax.get_xlim()
    assert low < 20 and high > 30_000  # every sample and the SLO line are inside
    share = (math.log(200) - math.log(20)) / (math.log(high) - math.log(low))
    assert share > 0.15, share  # linear from 0 to the SLO: 180 / 30000 = 0.6 %
    slo_lines = [line for line in ax.get_lines() if list(line.get_xdata()) == [30_000, 30_000]]
    assert slo_lines and slo_lines[0].get_linestyle() == "--"
    marks = {line.get_label(): line for line in ax.get_lines() if line.get_marker() == "o"}
    ordered = sorted(v * 1000 for v in samples)
    p50 = ordered[math.ceil(0.5 * 100) - 1]
    p99 = ordered[math.ceil(0.99 * 100) - 1]
    assert {label.split()[0] for label in marks} == {"p50", "p99"}
    for label, line in marks.items():
        expected = p50 if label.startswith("p50 ") else p99
        assert line.get_xdata()[0] == pytest.approx(expected)
    plt.close(fig)
    path = cdf_plot(samples, 30.0, "ttft", tmp_path / "ttft.png")
    assert _pixel_spread(path) > 0.05
