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
    FLAVOR_SGLANG,
    FLAVOR_TRTLLM,
    FLAVOR_VLLM,
    SGLANG_0_5_23,
    TRTLLM_1_2,
    VLLM_0_32,
)

FLAVORS = (FLAVOR_VLLM, FLAVOR_SGLANG, FLAVOR_TRTLLM)
_V, _S, _T = VLLM_0_32, SGLANG_0_5_23, TRTLLM_1_2  # names: catalog/engine_metrics.py

_SUMMED: dict[str, dict[str, tuple[str, ...]]] = {
    FLAVOR_VLLM: {
        "running": (_V.running,),
        "waiting": (_V.waiting,),
        "prefix_hits": _V.prefix_hits,
        "prefix_queries": _V.prefix_queries,
    },
    FLAVOR_SGLANG: {"running": (_S.running,), "waiting": (_S.waiting,)},
}
_AVERAGED: dict[str, dict[str, tuple[str, ...]]] = {
    FLAVOR_VLLM: {"kv_usage": _V.kv_usage},
    FLAVOR_SGLANG: {"kv_usage": _S.kv_usage, "prefix_hit_rate": (_S.prefix_hit_rate,)},
}


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
    """`vllm`, `sglang` or `trtllm` (a JSON list) from the text, None when none fits."""
    if text.lstrip().startswith("["):
        return FLAVOR_TRTLLM
    if _V.running.split(":")[0] + ":" in text:
        return FLAVOR_VLLM
    if _S.running.split(":")[0] + ":" in text:
        return FLAVOR_SGLANG
    return None


def _first(samples: dict[str, list[float]], names: tuple[str, ...]) -> list[float]:
    for name in names:
        if name in samples:
            return samples[name]
    return []


def parse_engine_metrics(text: str, flavor: str | None = None) -> LoadSnapshot:
    """The load snapshot in `text`; `flavor` None detects it from the names. Text that
    does not parse as the flavor says (an error page, an empty answer) is no load."""
    flavor = flavor if flavor in FLAVORS else detect_flavor(text)
    if flavor == FLAVOR_TRTLLM:
        return parse_trtllm_stats(text) or LoadSnapshot()
    if flavor is None:
        return LoadSnapshot()
    samples = parse_samples(text)
    values: dict[str, float] = {}
    for key, names in _SUMMED[flavor].items():
        values[key] = sum(_first(samples, names))
    for key, names in _AVERAGED[flavor].items():
        found = _first(samples, names)
        values[key] = sum(found) / len(found) if found else 0.0
    if flavor == FLAVOR_VLLM and values.get("prefix_queries", 0.0) > 0:
        values["prefix_hit_rate"] = values["prefix_hits"] / values["prefix_queries"]
    return LoadSnapshot(
        running=int(values.get("running", 0)),
        waiting=int(values.get("waiting", 0)),
        kv_usage=values.get("kv_usage", 0.0),
        prefix_hit_rate=values.get("prefix_hit_rate", 0.0),
        prefix_hits=values.get("prefix_hits", 0.0),
        prefix_queries=values.get("prefix_queries", 0.0),
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
