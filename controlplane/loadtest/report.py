"""From a run's raw data to its results: summary, verdict, cross-check, files.

`analyse` is pure; `write_outputs` writes `summary.json`, `requests.csv` (one row per
request, raw) and the PNG plots beside Locust's own `locust.html` and `locust_*.csv`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.loadtest import plots
from controlplane.loadtest.crosscheck import Check, cross_check
from controlplane.loadtest.runner import LoadTestConfig, RunData
from controlplane.loadtest.stats import scaled, summarise, time_series
from controlplane.loadtest.verdict import Verdict, judge

REQUEST_COLUMNS = ("kind", "start", "ok", "error", "ttft", "tpot", "e2e", "output_tokens",
                   "reasoning_tokens", "content_tokens", "tool_calls", "prompt_tokens",
                   "finish_reason", "itl_count", "itl_max")  # fmt: skip


@dataclass(frozen=True)
class Report:
    summary: dict[str, Any]
    verdict: Verdict
    checks: tuple[Check, ...]

    def to_json(self, cfg: LoadTestConfig) -> dict[str, Any]:
        return {
            "target": cfg.url,
            "model": cfg.model,
            "workload": cfg.workload,
            "load": {"users": cfg.users, "rate": cfg.rate, "burstiness": cfg.burstiness,
                     "duration_s": cfg.duration_s, "max_requests": cfg.max_requests},
            "slo": cfg.slo.model_dump(),
            "verdict": self.verdict.to_json(),
            "summary": self.summary,
            "cross_check": [c.to_json() for c in self.checks],
        }  # fmt: skip


def run_span(data: RunData) -> float:
    """Wall seconds from the first request sent to the last one finished."""
    if not data.samples:
        return data.wall_s
    first = min(s.start for s in data.samples)
    last = max(s.start + (s.e2e or 0.0) for s in data.samples)
    return max(last - first, 1e-6)


def analyse(cfg: LoadTestConfig, data: RunData) -> Report:
    """Summary, verdict and cross-check of one run (pure)."""
    summary = summarise(data.samples, run_span(data), cfg.slo, cfg.time_scale)
    verdict = judge(summary, cfg.slo)
    checks = cross_check(summary, data.before, data.after, data.sim_ttfts)
    return Report(summary, verdict, tuple(checks))


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_outputs(cfg: LoadTestConfig, data: RunData, report: Report) -> list[Path]:
    """summary.json, requests.csv and the plots; returns every output file that exists."""
    out = cfg.out_dir
    (out / "summary.json").write_text(json.dumps(_clean(report.to_json(cfg)), indent=2))
    with (out / "requests.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REQUEST_COLUMNS)
        for s in scaled(data.samples, cfg.time_scale):
            row = s.to_json() | {"itl_count": len(s.itl), "itl_max": max(s.itl, default=None)}
            writer.writerow([row.get(c) for c in REQUEST_COLUMNS])
    ok = [s for s in scaled(data.samples, cfg.time_scale) if s.ok]
    plots.cdf_plot([s.ttft for s in ok if s.ttft is not None], cfg.slo.ttft_p99,
                   "time to first token (CDF)", out / "ttft_cdf.png")  # fmt: skip
    plots.cdf_plot([g for s in ok for g in s.itl], cfg.slo.itl_p99,
                   "inter-token latency (CDF)", out / "itl_cdf.png")  # fmt: skip
    t0 = min((s.start for s in data.samples), default=0.0)
    series = [{**row, "t": row["t"] - t0} for row in data.engine_series]
    bin_s = max(1.0, run_span(data) / 20)
    plots.timeline_plot(time_series(data.samples, bin_s, cfg.time_scale), series,
                        out / "timeline.png")  # fmt: skip
    names = ("locust.html", "locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv",
             "summary.json", "requests.csv", "samples.jsonl", "ttft_cdf.png", "itl_cdf.png",
             "timeline.png")  # fmt: skip
    return [out / n for n in names if (out / n).is_file()]
