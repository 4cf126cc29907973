"""The router's own Prometheus metrics: plain dict counters, cheap on the request path.

Each worker process keeps its own `RouterMetrics`; workers publish `export()` to Redis
every few seconds and `/metrics` on any worker renders the sum over all live workers
(`render(merge([...]))`), so a scrape of the shared port sees the whole router.

Every answered request is counted once in `glmctl_router_requests_total{route, status,
outcome}` (`count_request`). `outcome` says whose failure it was, which the status alone
cannot: a stream that breaks after its 200 header is `midstream_error`, a 429 because every
endpoint's queue is full is `overloaded` (the service's failure), while a 429 for a spent
per-key limit is `rate_limited` (the client's). The availability SLI counts BAD_OUTCOMES.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from controlplane.router.registry import EndpointInfo

# Latency buckets in seconds: from the 0.5 ms added-latency target up to long generations.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5)

REQUESTS = "glmctl_router_requests_total"
OUTCOME_OK = "ok"
OUTCOME_CLIENT_ERROR = "client_error"  # 4xx but 429: the request was wrong
OUTCOME_RATE_LIMITED = "rate_limited"  # 429 for a spent per-key or global rate limit
OUTCOME_OVERLOADED = "overloaded"  # 429: every endpoint's queue is full
OUTCOME_MIDSTREAM = "midstream_error"  # the answer started, then the upstream failed
OUTCOME_ERROR = "error"  # 5xx answered (no endpoint, all failed, timeout)
OUTCOMES = (OUTCOME_OK, OUTCOME_CLIENT_ERROR, OUTCOME_RATE_LIMITED, OUTCOME_OVERLOADED,
            OUTCOME_MIDSTREAM, OUTCOME_ERROR)  # fmt: skip
BAD_OUTCOMES = (OUTCOME_ERROR, OUTCOME_OVERLOADED, OUTCOME_MIDSTREAM)  # spend the SLO budget

_HELP = {
    REQUESTS: "Requests answered, by route, status code and outcome (ok, client_error,"
    " rate_limited, overloaded, midstream_error, error).",
    "glmctl_router_errors_total": "Errors, by kind (upstream_connect, upstream_midstream, ...).",
    "glmctl_router_decisions_total": "Routing decisions, by policy, endpoint and reason.",
    "glmctl_router_retries_total": "Requests retried on another endpoint before the first byte.",
    "glmctl_router_overflow_total": "Requests sent to an overflow endpoint, by reason"
    " (saturated: every local replica full; failover: none healthy) and endpoint.",
    "glmctl_router_prefix_blocks_total": "Prompt prefix blocks of requests routed by prefix.",
    "glmctl_router_prefix_blocks_matched_total": "Of those, blocks cached on the chosen endpoint.",
    "glmctl_router_kv_prompt_blocks_total": "precise_prefix: the prompt's full KV blocks,"
    " per chosen endpoint.",
    "glmctl_router_kv_predicted_hit_blocks_total": "precise_prefix: of those, the leading run"
    " the KV events say the chosen endpoint holds.",
    "glmctl_router_ttft_seconds": "Time to the first upstream byte.",
    "glmctl_router_e2e_seconds": "Time to the last byte.",
    "glmctl_router_redis_seconds": "Latency of the routing lookup in Redis.",
}
_HISTOGRAMS = {
    "glmctl_router_ttft_seconds": LATENCY_BUCKETS,
    "glmctl_router_e2e_seconds": LATENCY_BUCKETS,
    "glmctl_router_redis_seconds": REDIS_BUCKETS,
}

Labels = tuple[tuple[str, str], ...]
_BLOCKS = "glmctl_router_prefix_blocks_total"
_MATCHED = "glmctl_router_prefix_blocks_matched_total"


class RouterMetrics:
    """Counters and histograms of one worker."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, Labels], float] = {}
        self.histograms: dict[str, list[float]] = {
            name: [0.0] * (len(buckets) + 2) for name, buckets in _HISTOGRAMS.items()
        }  # per bucket counts, then +Inf count, then sum

    def inc(self, name: str, labels: Labels = (), amount: float = 1.0) -> None:
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def observe(self, name: str, seconds: float) -> None:
        data = self.histograms[name]
        buckets = _HISTOGRAMS[name]
        data[bisect_left(buckets, seconds)] += 1
        data[-1] += seconds

    def export(self, inflight: dict[str, int] | None = None) -> dict[str, Any]:
        """JSON-able state for merging across workers (with this worker's in-flight counts)."""
        return {
            "inflight": dict(inflight or {}),
            "counters": [
                [name, list(labels), value] for (name, labels), value in self.counters.items()
            ],
            "histograms": self.histograms,
        }


def outcome_of(status: int, outcome: str = "") -> str:
    """The outcome of a request answered with `status`; `outcome` (set by the request path
    for what the status cannot tell: OUTCOME_MIDSTREAM, OUTCOME_OVERLOADED) wins."""
    if outcome:
        return outcome
    if status >= 500:
        return OUTCOME_ERROR
    if status == 429:
        return OUTCOME_RATE_LIMITED
    return OUTCOME_CLIENT_ERROR if status >= 400 else OUTCOME_OK


def count_request(metrics: RouterMetrics, route: str, status: int, outcome: str = "") -> None:
    """Count one answered request (exactly once per request, after its last byte)."""
    labels = (("route", route), ("status", str(status)), ("outcome", outcome_of(status, outcome)))
    metrics.inc(REQUESTS, labels)


def merge(exports: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum of several workers' `export()`."""
    counters: dict[tuple[str, Labels], float] = {}
    histograms: dict[str, list[float]] = {}
    inflight: dict[str, int] = {}
    for export in exports:
        for endpoint, count in export.get("inflight", {}).items():
            inflight[endpoint] = inflight.get(endpoint, 0) + int(count)
        for name, labels, value in export.get("counters", []):
            key = (name, tuple(tuple(pair) for pair in labels))
            counters[key] = counters.get(key, 0.0) + value
        for name, data in export.get("histograms", {}).items():
            total = histograms.setdefault(name, [0.0] * len(data))
            for index, value in enumerate(data):
                total[index] += value
    return {"counters": counters, "histograms": histograms, "inflight": inflight}


def _label_text(labels: Labels, extra: str = "") -> str:
    parts = [f'{key}="{value}"' for key, value in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def render(merged: dict[str, Any]) -> str:
    """Prometheus text exposition of merged metrics."""
    lines: list[str] = []
    by_name: dict[str, list[tuple[Labels, float]]] = {}
    for (name, labels), value in merged["counters"].items():
        by_name.setdefault(name, []).append((labels, value))
    for name, samples in sorted(by_name.items()):
        lines += [f"# HELP {name} {_HELP.get(name, name)}", f"# TYPE {name} counter"]
        lines += [f"{name}{_label_text(labels)} {value}" for labels, value in sorted(samples)]
    total = sum(v for (n, _), v in merged["counters"].items() if n == _BLOCKS)
    matched = sum(v for (n, _), v in merged["counters"].items() if n == _MATCHED)
    lines += [
        "# HELP glmctl_router_prefix_hit_ratio Matched / total prompt prefix blocks so far.",
        "# TYPE glmctl_router_prefix_hit_ratio gauge",
        f"glmctl_router_prefix_hit_ratio {matched / total if total else 0.0}",
    ]
    lines += [
        "# HELP glmctl_router_inflight Requests in flight through the router, per endpoint.",
        "# TYPE glmctl_router_inflight gauge",
    ]
    lines += [
        f'glmctl_router_inflight{{endpoint="{endpoint}"}} {count}'
        for endpoint, count in sorted(merged.get("inflight", {}).items())
    ]
    for name, data in sorted(merged["histograms"].items()):
        buckets = _HISTOGRAMS.get(name, ())
        lines += [f"# HELP {name} {_HELP.get(name, name)}", f"# TYPE {name} histogram"]
        cumulative = 0.0
        for bound, count in zip(buckets, data, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        cumulative += data[len(buckets)]
        lines.append(f'{name}_bucket{{le="+Inf"}} {cumulative}')
        lines += [f"{name}_count {cumulative}", f"{name}_sum {data[-1]}"]
    return "\n".join(lines) + "\n"


def endpoint_info(infos: Iterable[EndpointInfo], healthy: Callable[[str], bool]) -> str:
    """1 per endpoint in rotation, 0 while out; `kind` marks external ones, `role` overflow."""
    name = "glmctl_router_endpoint_up"
    lines = [
        f"# HELP {name} 1 while the endpoint is healthy in this router's view, by kind and role.",
        f"# TYPE {name} gauge",
    ]
    for info in sorted(infos, key=lambda i: i.endpoint_id):
        labels = f'endpoint="{info.endpoint_id}",kind="{info.kind}",role="{info.role}"'
        lines.append(f"{name}{{{labels}}} {1 if healthy(info.endpoint_id) else 0}")
    return "\n".join(lines) + "\n"


def redis_up(ok: bool) -> str:
    """The answering worker's view of Redis (1 reachable, 0 breaker open): alerts use it."""
    return (
        "# HELP glmctl_router_redis_up 1 while the answering router worker reaches Redis.\n"
        "# TYPE glmctl_router_redis_up gauge\n"
        f"glmctl_router_redis_up {1 if ok else 0}\n"
    )
