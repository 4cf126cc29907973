"""Goodput from streamed request traces (pure; the load generator is pd_goodput_bench.py).

A request meets its SLO when it finished with every token it asked for, its TTFT (send to
the first chunk carrying a token) is within the TTFT bound, and the 99th percentile of its
inter-token latencies is within the ITL bound. A chunk that carries k tokens (MTP emits
about two per step) after a gap g counts as k inter-token latencies of g / k, as the
capacity model divides a decode step by its tokens per step. Goodput at an offered rate is
that rate times the share of requests that met the SLO, per GPU of the layout.

Traces hold wall seconds; `scale` (the simulator's time scale) turns them into model
seconds, the unit of the bounds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Slo:
    ttft_s: float
    itl_s: float

    def text(self) -> str:
        return f"TTFT <= {self.ttft_s:g} s, ITL p99 <= {self.itl_s * 1000:g} ms"


@dataclass
class Trace:
    """One streamed request as the client saw it (wall seconds)."""

    sent: float
    expected_tokens: int
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (arrival, tokens)
    error: str = ""  # why it failed: HTTP status, the stream's error event, the exception

    @property
    def failed(self) -> bool:
        return bool(self.error)

    @property
    def tokens(self) -> int:
        return sum(count for _, count in self.chunks)

    def ttft(self, scale: float = 1.0) -> float | None:
        return (self.chunks[0][0] - self.sent) * scale if self.chunks else None

    def itls(self, scale: float = 1.0) -> list[float]:
        """Per-token inter-token latencies in model seconds (none before the first chunk)."""
        out: list[float] = []
        for (before, _), (at, count) in zip(self.chunks, self.chunks[1:], strict=False):
            out.extend([(at - before) * scale / count] * count)
        return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def meets(trace: Trace, slo: Slo, scale: float = 1.0) -> bool:
    """Finished with all its tokens, TTFT and per-request ITL p99 within `slo`."""
    ttft = trace.ttft(scale)
    if trace.failed or ttft is None or trace.tokens < trace.expected_tokens:
        return False
    itls = trace.itls(scale)
    return ttft <= slo.ttft_s and (not itls or percentile(itls, 0.99) <= slo.itl_s)


@dataclass(frozen=True)
class Point:
    """One layout at one offered rate: what the table prints."""

    rate: float  # offered requests/s (model time)
    gpus: int
    attainment: float  # share of requests that met the SLO
    ttft_p99: float
    itl_p99: float  # over every token of every request
    failed: int
    late_steps: float = 0.0  # share of the engines' steps that ran late (host saturated)
    errors: tuple[tuple[str, int], ...] = ()  # (error, how many requests), most common first

    @property
    def goodput_per_gpu(self) -> float:
        return self.rate * self.attainment / self.gpus


def summarise(traces: list[Trace], slo: Slo, rate: float, gpus: int, scale: float) -> Point:
    """The point's goodput figures from its traces (`rate` in model requests/s)."""
    met = sum(meets(t, slo, scale) for t in traces)
    ttfts = [t for t in (trace.ttft(scale) for trace in traces) if t is not None]
    itls = [v for trace in traces for v in trace.itls(scale)]
    return Point(
        rate=rate,
        gpus=gpus,
        attainment=met / len(traces) if traces else 0.0,
        ttft_p99=percentile(ttfts, 0.99),
        itl_p99=percentile(itls, 0.99),
        failed=sum(t.failed for t in traces),
        errors=tuple(Counter(t.error for t in traces if t.failed).most_common()),
    )


def winner(pd: float, colocated: float, tie: float = 0.05) -> str:
    """`disaggregated`, `colocated` or `tie` (within `tie`, relative) by goodput per GPU."""
    if max(pd, colocated) <= 0 or abs(pd - colocated) <= tie * max(pd, colocated):
        return "tie"
    return "disaggregated" if pd > colocated else "colocated"
