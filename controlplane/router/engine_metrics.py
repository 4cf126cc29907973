"""Engine load from its `/metrics` answer (pure parsers: vLLM and SGLang Prometheus names,
TensorRT-LLM's JSON iteration stats).

vLLM (v1 engine) exports `vllm:num_requests_running`, `vllm:num_requests_waiting`,
`vllm:kv_cache_usage_perc` (older: `vllm:gpu_cache_usage_perc`), and the counters
`vllm:prefix_cache_hits_total` / `vllm:prefix_cache_queries_total`. SGLang exports
`sglang:num_running_reqs`, `sglang:num_queue_reqs`, `sglang:token_usage` and
`sglang:cache_hit_rate`. Values of one name with several label sets are summed (one
engine may report per model or per data-parallel rank); ratios are averaged. The names
(and TensorRT-LLM's JSON field names) are catalog/engine_metrics.py's, pinned to each
engine's source there.

TensorRT-LLM (`trtllm-serve`, 1.2.0rc2, the version engines/trtllm.py targets) answers
`GET /metrics` with JSON, not Prometheus text: a list of the iteration stats its executor
queued since the last read (tensorrt_llm/serve/openai_server.py @00057725
`get_iteration_stats`: `generator.get_stats_async(2)`, each entry `json.loads` of the C++
`IterationStats` in executor/result.py @005bc84 `IterationResult`). The field names are the
C++ struct's (cpp/tensorrt_llm/executor/jsonSerialization.cpp @086f692):
`numActiveRequests`, `numQueuedRequests` and `kvCacheStats` {`maxNumBlocks`, `usedNumBlocks`,
`cacheHitRate`, ...}, which is null when the engine has no KV cache manager. The latest
entry (highest `iter`) is the engine's present state. An empty list means no iteration ran
since the last read: the engine is idle (or another reader took the entries; the queue is
drained by every read). The read is a long poll: `IterationResult` waits up to 2 s for each
further entry, so it answers once 2 s pass without an iteration, then `[]` at once until a
request re-arms it (collector.py reads it off its probe loop). Commits are the code index's
versions of each file (no git checkout here); that they match the 1.2.0rc2 tag is not
verified, but these routes and fields are the same in every version the index returned.
Prometheus names (`trtllm_*`) exist only at `/prometheus/metrics`
with `return_perf_metrics: true`, and around this version they are per-request metrics
(NVIDIA Dynamo's "TensorRT-LLM Prometheus Metrics" page: five for 1.1.0rc5; the oldest
tensorrt_llm/metrics/collector.py in the code index adds only `trtllm_kv_cache_hit_rate`
and `trtllm_kv_cache_utilization`): no running / waiting gauges, which appear later
(collector.py @050f80d `trtllm_num_requests_running`, read by a background task that then
shares the stats queue with `/metrics`). So the router reads the JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from controlplane.catalog.engine_metrics import (
    BY_FLAVOR,
    JSON_BY_FLAVOR,
    PROMETHEUS_ENGINES,
    TRTLLM_1_2,
    PrometheusMetrics,
)

# Every flavour whose `/metrics` the router reads: Prometheus text or JSON iteration stats.
FLAVORS = (*BY_FLAVOR, *JSON_BY_FLAVOR)
_T = TRTLLM_1_2  # its JSON field names: catalog/engine_metrics.py


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """What one scrape of an engine says about its load."""

    running: int = 0
    waiting: int = 0
    kv_usage: float = 0.0  # 0..1
    prefix_hit_rate: float = 0.0  # 0..1 (vLLM: cumulative hits / queries)
    prefix_hits: float = 0.0  # cumulative counters where the engine has them
    prefix_queries: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadSnapshot:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def parse_samples(text: str) -> dict[str, list[float]]:
    """Metric name -> values of its samples (labels dropped), from exposition text."""
    samples: dict[str, list[float]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, _, rest = line.partition("{")
            rest = rest[rest.rfind("}") + 1 :]
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        samples.setdefault(name.strip(), []).append(value)
    return samples


def detect_flavor(text: str) -> str | None:
    """`vllm`, `sglang` (by their metric-name prefixes) or `trtllm` (a JSON list) from the
    text, None when none fits."""
    if text.lstrip().startswith("["):
        return next(iter(JSON_BY_FLAVOR), None)
    for names in PROMETHEUS_ENGINES:
        if names.running.split(":")[0] + ":" in text:
            return names.flavor
    return None


def long_poll(flavor: str) -> bool:
    """Whether reading this flavour's `/metrics` waits and drains (TensorRT-LLM's JSON)."""
    stats = JSON_BY_FLAVOR.get(flavor)
    return stats is not None and stats.long_poll


def _first(samples: dict[str, list[float]], names: tuple[str, ...]) -> list[float]:
    for name in names:
        if name in samples:
            return samples[name]
    return []


def parse_engine_metrics(text: str, flavor: str | None = None) -> LoadSnapshot:
    """The load snapshot in `text`; `flavor` None detects it from the names. Text that
    does not parse as the flavor says (an error page, an empty answer) is no load."""
    flavor = flavor if flavor in FLAVORS else detect_flavor(text)
    if flavor in JSON_BY_FLAVOR:
        return parse_trtllm_stats(text) or LoadSnapshot()
    names = BY_FLAVOR.get(flavor or "")
    return LoadSnapshot() if names is None else _prometheus_load(parse_samples(text), names)


def _prometheus_load(samples: dict[str, list[float]], names: PrometheusMetrics) -> LoadSnapshot:
    """Gauges summed over label sets, KV usage averaged; the prefix hit rate from the hit
    and query counters where the engine has them (vLLM), else its own gauge (SGLang)."""
    kv = _first(samples, names.kv_usage)
    hits = sum(_first(samples, names.prefix_hits)) if names.prefix_hits else 0.0
    queries = sum(_first(samples, names.prefix_queries)) if names.prefix_queries else 0.0
    if queries > 0:
        hit_rate = hits / queries
    else:
        gauge = _first(samples, (names.prefix_hit_rate,)) if names.prefix_hit_rate else []
        hit_rate = sum(gauge) / len(gauge) if gauge else 0.0
    return LoadSnapshot(
        running=int(sum(_first(samples, (names.running,)))),
        waiting=int(sum(_first(samples, (names.waiting,)))),
        kv_usage=sum(kv) / len(kv) if kv else 0.0,
        prefix_hit_rate=hit_rate,
        prefix_hits=hits,
        prefix_queries=queries,
    )


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def latest_iteration(text: str) -> dict[str, Any] | None:
    """The newest entry (highest `iter`) of trtllm-serve's `/metrics` JSON list; None for
    an empty list or anything that is not a list of objects."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    entries = [entry for entry in data if isinstance(entry, dict)]
    if not entries:
        return None
    return max(enumerate(entries), key=lambda pair: (_count(pair[1].get(_T.iteration)), pair[0]))[1]


def parse_trtllm_stats(text: str) -> LoadSnapshot | None:
    """Load from TensorRT-LLM's iteration stats (module docstring); None: no entry to read.
    KV usage is used / max blocks of `kvCacheStats`."""
    latest = latest_iteration(text)
    if latest is None:
        return None
    kv = latest.get(_T.kv_stats)
    kv = kv if isinstance(kv, dict) else {}
    max_blocks = _count(kv.get(_T.kv_max_blocks))
    hit_rate = kv.get(_T.kv_hit_rate)
    return LoadSnapshot(
        running=_count(latest.get(_T.running)),
        waiting=_count(latest.get(_T.waiting)),
        kv_usage=_count(kv.get(_T.kv_used_blocks)) / max_blocks if max_blocks > 0 else 0.0,
        prefix_hit_rate=float(hit_rate) if isinstance(hit_rate, int | float) else 0.0,
    )
