"""Statistics of a load test from its raw samples (pure), with vLLM `bench serve`'s names.

Percentiles interpolate linearly between the raw samples (numpy's default, which vLLM
uses), never Locust's rounded response-time buckets. Times are reported in model seconds:
a run against the simulator at `time_scale` S measures wall seconds S times shorter than
the engine it simulates, so times are multiplied by S and rates divided by S.

Goodput counts the requests that succeeded with TTFT <= the TTFT target and TPOT <= the
inter-token target (vLLM's `--goodput ttft:.. tpot:..`, DistServe's definition).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from controlplane.loadtest.sse import RequestSample
from controlplane.spec.models import SloSpec

PERCENTILES = (50, 90, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: Sequence[float]) -> dict[str, float]:
    """mean, std, p50..p99, min and max of raw values (nan when empty)."""
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n) if n else math.nan
    out = {"count": float(n), "mean": mean, "std": std}
    out |= {f"p{q}": percentile(values, q) for q in PERCENTILES}
    out |= {"min": min(values, default=math.nan), "max": max(values, default=math.nan)}
    return out


def scaled(samples: Iterable[RequestSample], time_scale: float) -> list[RequestSample]:
    """Samples with times in model seconds (see the module docstring)."""
    out = []
    for s in samples:
        copy = RequestSample.from_json(s.to_json())
        if time_scale != 1.0:
            copy.ttft = None if s.ttft is None else s.ttft * time_scale
            copy.e2e = None if s.e2e is None else s.e2e * time_scale
            copy.itl = [gap * time_scale for gap in s.itl]
        out.append(copy)
    return out


def is_good(sample: RequestSample, slo: SloSpec) -> bool:
    """Whether one request met every per-request SLO (see the module docstring)."""
    if not sample.ok or sample.ttft is None or sample.ttft > slo.ttft_p99:
        return False
    tpot = sample.tpot
    return tpot is None or tpot <= slo.itl_p99


def summarise(
    samples: Sequence[RequestSample], duration_s: float, slo: SloSpec, time_scale: float = 1.0
) -> dict[str, Any]:
    """The run's summary; `samples` and `duration_s` in wall seconds of the client."""
    model = scaled(samples, time_scale)
    seconds = max(duration_s * time_scale, 1e-9)
    ok = [s for s in model if s.ok]
    good = [s for s in ok if is_good(s, slo)]
    output = sum(s.output_tokens for s in ok)
    prompt = sum(s.prompt_tokens for s in ok)
    failures = Counter((s.error or "").split(":", 1)[0] for s in model if not s.ok)
    itl = [gap for s in ok for gap in s.itl]
    return {
        "requests": len(model),
        "completed": len(ok),
        "failed": len(model) - len(ok),
        "failures_by_cause": dict(sorted(failures.items())),
        "duration_s": seconds,
        "time_scale": time_scale,
        "availability": len(ok) / len(model) if model else 0.0,
        "request_throughput": len(ok) / seconds,
        "request_goodput": len(good) / seconds,
        "goodput_share": len(good) / len(model) if model else 0.0,
        "output_token_throughput": output / seconds,
        "goodput_token_throughput": sum(s.output_tokens for s in good) / seconds,
        "total_token_throughput": (output + prompt) / seconds,
        "total_output_tokens": output,
        "total_prompt_tokens": prompt,
        "reasoning_tokens": sum(s.reasoning_tokens for s in ok),
        "content_tokens": sum(s.content_tokens for s in ok),
        "tool_calls": sum(s.tool_calls for s in ok),
        "ttft_s": distribution([s.ttft for s in ok if s.ttft is not None]),
        "tpot_s": distribution([t for s in ok if (t := s.tpot) is not None]),
        "itl_s": distribution(itl),
        "e2el_s": distribution([s.e2e for s in ok if s.e2e is not None]),
        "output_tokens_per_s_per_request": distribution(
            [r for s in ok if (r := s.output_tokens_per_s) is not None]
        ),
        "by_workload": _by_kind(ok),
    }


def _by_kind(ok: Sequence[RequestSample]) -> dict[str, dict[str, float]]:
    kinds: dict[str, list[RequestSample]] = {}
    for s in ok:
        kinds.setdefault(s.kind, []).append(s)
    return {
        kind: {
            "requests": float(len(group)),
            "ttft_p50_s": percentile([s.ttft for s in group if s.ttft is not None], 50),
            "tpot_p50_s": percentile([t for s in group if (t := s.tpot) is not None], 50),
            "output_tokens_mean": sum(s.output_tokens for s in group) / len(group),
            "prompt_tokens_mean": sum(s.prompt_tokens for s in group) / len(group),
        }
        for kind, group in sorted(kinds.items())
    }


def time_series(
    samples: Sequence[RequestSample], bin_s: float, time_scale: float = 1.0
) -> list[dict[str, float]]:
    """Per `bin_s` wall seconds since the first request: output tokens/s (model time) of the
    requests that finished in the bin, and TTFT p50 / p99 of those that started in it."""
    if not samples:
        return []
    t0 = min(s.start for s in samples)
    started: dict[int, list[RequestSample]] = {}
    tokens: dict[int, int] = {}
    for s in samples:
        started.setdefault(int((s.start - t0) // bin_s), []).append(s)
        if s.ok:
            end = int((s.start + (s.e2e or 0.0) - t0) // bin_s)
            tokens[end] = tokens.get(end, 0) + s.output_tokens
    rows = []
    for index in range(max(*started, *tokens, 0) + 1):
        group = [s for s in scaled(started.get(index, []), time_scale) if s.ok]
        ttfts = [s.ttft for s in group if s.ttft is not None]
        rows.append(
            {
                "t_s": index * bin_s,
                "requests": float(len(group)),
                "output_tokens_per_s": tokens.get(index, 0) / (bin_s * time_scale),
                "ttft_p50_s": percentile(ttfts, 50),
                "ttft_p99_s": percentile(ttfts, 99),
            }
        )
    return rows
