"""Keep the load test honest: its numbers against the engines' own (pure).

Three views of the same run:
- the client's, from the SSE stream (`stats.summarise`, model seconds);
- the engines' Prometheus histograms and counters, as the difference of a scrape before
  and after the run (each engine's TTFT histogram and generated-tokens counter, by the
  names catalog/engine_metrics.py holds for it), summed over the engines;
- the simulator's exact accounting (`/sim/ttft`: every TTFT it recorded), when simulated.
Each check passes when the two agree within `tolerance` (10 % by default). A histogram
knows its p50 only to the bucket that holds it (vLLM's TTFT buckets are 0.1, 0.25, 0.5,
0.75, 1, 2.5 s...), so the client's p50 is checked to lie within 10 % of that bucket; the
interpolated value (Prometheus' `histogram_quantile`) is shown beside it, and the
histogram's mean (`_sum / _count`) is exact and checked within 10 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.catalog.engine_metrics import PROMETHEUS_ENGINES
from controlplane.loadtest.stats import percentile

TOLERANCE = 0.10
# Each engine's own names (a scrape holds one engine's): the TTFT histogram and the counter
# of generated tokens, `_total` included.
TTFT = tuple(m.ttft.name for m in PROMETHEUS_ENGINES)
GENERATED = tuple(m.generation_tokens for m in PROMETHEUS_ENGINES)


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts by upper bound, with sum and count."""

    buckets: tuple[tuple[float, float], ...]
    total: float
    count: float

    def minus(self, before: Histogram) -> Histogram:
        earlier = dict(before.buckets)
        return Histogram(
            tuple((le, n - earlier.get(le, 0.0)) for le, n in self.buckets),
            self.total - before.total,
            self.count - before.count,
        )

    def bucket_of(self, q: float) -> tuple[float, float]:
        """Bounds (lower, upper] of the bucket holding the q-quantile."""
        rank = q * self.buckets[-1][1] if self.buckets else 0.0
        lower = 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                return lower, le
            lower = le
        return lower, math.inf

    def quantile(self, q: float) -> float:
        """Prometheus `histogram_quantile` (q in 0..1): linear inside the bucket."""
        if self.count <= 0 or not self.buckets:
            return math.nan
        rank = q * self.buckets[-1][1]
        lower_bound, lower_count = 0.0, 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(le):
                    return lower_bound
                width = cumulative - lower_count
                share = (rank - lower_count) / width if width else 0.0
                return lower_bound + (le - lower_bound) * share
            lower_bound, lower_count = le, cumulative
        return lower_bound

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else math.nan


def _labels_le(labels: str) -> float | None:
    for part in labels.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "le":
            value = value.strip().strip('"')
            return math.inf if value == "+Inf" else float(value)
    return None


def histogram(text: str, names: Sequence[str]) -> Histogram | None:
    """The histogram named one of `names` (e.g. `TTFT`), summed over label sets."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, rest = line.partition("{") if "{" in line else line.partition(" ")
        base, _, series = name.rpartition("_")
        if base not in names:
            continue
        labels, _, value_text = rest.rpartition("}") if "{" in line else ("", "", rest)
        value = float(value_text.split()[0])
        if series == "bucket":
            le = _labels_le(labels)
            if le is not None:
                buckets[le] = buckets.get(le, 0.0) + value
                found = True
        elif series == "sum":
            total += value
        elif series == "count":
            count += value
    if not found:
        return None
    return Histogram(tuple(sorted(buckets.items())), total, count)


def counter(text: str, names: Sequence[str]) -> float:
    """Sum of the counter named one of `names` (e.g. `GENERATED`) over label sets."""
    value = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            value += float(line.rsplit(" ", 1)[1])
    return value


@dataclass(frozen=True)
class Check:
    name: str
    client: float
    reference: float
    source: str
    tolerance: float = TOLERANCE
    bucket: tuple[float, float] | None = None  # a histogram quantile is only known this well

    @property
    def difference(self) -> float:
        """Relative distance to the reference; for a histogram quantile, to its bucket."""
        if math.isnan(self.client) or math.isnan(self.reference) or self.reference == 0:
            return math.nan
        if self.bucket is not None:
            low, high = self.bucket
            if low <= self.client <= high:
                return 0.0
            nearest = low if self.client < low else high
            return abs(self.client - nearest) / nearest if nearest else math.nan
        return abs(self.client - self.reference) / abs(self.reference)

    @property
    def passed(self) -> bool:
        return not math.isnan(self.difference) and self.difference <= self.tolerance

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "difference": self.difference, "passed": self.passed}


def cross_check(
    summary: dict[str, Any],
    before: list[str],
    after: list[str],
    sim_ttfts: list[float] | None = None,
    tolerance: float = TOLERANCE,
) -> list[Check]:
    """Checks of the client's TTFT and output tokens against engine scrapes (one text per
    engine, before and after the run) and the simulator's TTFTs of the run."""
    checks = []
    ttft_p50, ttft_mean = summary["ttft_s"]["p50"], summary["ttft_s"]["mean"]
    hist = _delta_histogram(before, after, TTFT)
    if hist is not None and hist.count > 0:
        checks.append(Check("ttft_p50_s", ttft_p50, hist.quantile(0.5), "engine histogram",
                            tolerance, hist.bucket_of(0.5)))  # fmt: skip
        checks.append(Check("ttft_mean_s", ttft_mean, hist.mean, "engine histogram", tolerance))
    generated = sum(counter(a, GENERATED) for a in after) - sum(
        counter(b, GENERATED) for b in before
    )
    # TensorRT-LLM's /metrics (JSON iteration stats) has no token counter: nothing to check.
    if any(name in text for text in after for name in GENERATED):
        checks.append(Check("output_tokens", float(summary["total_output_tokens"]),
                            generated, "engine counter", tolerance))  # fmt: skip
    if sim_ttfts:
        checks.append(Check("ttft_p50_s", ttft_p50, percentile(sim_ttfts, 50),
                            "simulator accounting", tolerance))  # fmt: skip
        checks.append(Check("ttft_count", float(summary["completed"]), float(len(sim_ttfts)),
                            "simulator accounting", tolerance))  # fmt: skip
    return checks


def _delta_histogram(before: list[str], after: list[str], names: Sequence[str]) -> Histogram | None:
    merged: Histogram | None = None
    for index, text in enumerate(after):
        now = histogram(text, names)
        if now is None:
            continue
        earlier = histogram(before[index], names) if index < len(before) else None
        delta = now.minus(earlier) if earlier is not None else now
        merged = delta if merged is None else _add(merged, delta)
    return merged


def _add(a: Histogram, b: Histogram) -> Histogram:
    other = dict(b.buckets)
    return Histogram(
        tuple((le, n + other.get(le, 0.0)) for le, n in a.buckets),
        a.total + b.total,
        a.count + b.count,
    )
