"""What each engine exports for metrics, per engine and version: the one place glmctl
spells engine metric names, label conventions and histogram bucket bounds.

The router's load parser (router/engine_metrics.py), the engine process wrapper's
running-requests reader (engines/base.py), the simulator (engines/sim/metrics.py) and the
metrics catalogue with its recording and alert rules (observe/catalog.py, observe/rules.py)
all read these objects; engine profiles reference them. Pure data, no imports from the
rest of glmctl, so any layer may read it.

Transcribed from the engines' own source for the versions glmctl targets (the pins in
engines/sglang.py, engines/vllm.py, engines/trtllm.py):

- SGLang 0.5.23: PyPI wheel `sglang-0.5.23-cp311-cp311-manylinux_2_34_x86_64.whl`
  (tag v0.5.23 of sgl-project/sglang; its `_version.py` says 0.5.23), file
  `sglang/srt/observability/metrics_collector.py` (older releases:
  `sglang/srt/metrics/collector.py`, same default buckets). `TokenizerMetricsCollector`
  holds the request histograms with defaults used when `--bucket-time-to-first-token` /
  `--bucket-inter-token-latency` / `--bucket-e2e-request-latency` are unset
  (srt/arg_groups/fields/observability.py: default None); labels from
  `tokenizer_metric_labels()` = model_name, engine_type, plus `is_streaming` on TTFT, e2e,
  token and request counters. `SchedulerMetricsCollector` holds the gauges and
  `sglang:queue_time_seconds`, labelled model_name, engine_type, tp_rank, pp_rank,
  moe_ep_rank (+ dp_rank with data parallelism).
- vLLM 0.32.0: PyPI wheel `vllm-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl` (commit
  5df63a720 per its `_version.py`), `vllm/v1/metrics/buckets.py` (TIME_TO_FIRST_TOKEN_,
  INTER_TOKEN_LATENCY_, REQUEST_LATENCY_BUCKETS) and `vllm/v1/metrics/loggers.py`
  (labelnames `model_name`, `engine`; `vllm:request_success` + `finished_reason`).
- TensorRT-LLM 1.2.0rc2: `/metrics` is JSON iteration stats, not Prometheus text (field
  names: cpp/tensorrt_llm/executor/jsonSerialization.cpp @086f692; see
  router/engine_metrics.py): no histograms, so no engine-side latency SLI.

prometheus_client prints a bound as Go's float format (`1` -> `le="1.0"`, `0.010` ->
`le="0.01"`): `le_text` does the same, so rules select the exact label value.
"""

from __future__ import annotations

from dataclasses import dataclass

FLAVOR_VLLM = "vllm"
FLAVOR_SGLANG = "sglang"
FLAVOR_TRTLLM = "trtllm"


@dataclass(frozen=True)
class HistogramNames:
    """One histogram: its name (without _bucket/_count/_sum), bounds and labels (not `le`)."""

    name: str
    bounds: tuple[float, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class PrometheusMetrics:
    """The Prometheus names of one engine version (the series glmctl reads or shows)."""

    flavor: str
    version: str
    source: str
    running: str
    waiting: str
    kv_usage: tuple[str, ...]  # first present wins; later names are older releases'
    prompt_tokens: str
    generation_tokens: str
    requests_finished: str  # counter with the `_total` suffix as scraped
    ttft: HistogramNames
    itl: HistogramNames
    e2e: HistogramNames
    queue_time: HistogramNames
    gauge_labels: tuple[str, ...]  # labels of the scheduler / engine gauges
    prefix_hits: tuple[str, ...] = ()  # counters (vLLM); first present wins
    prefix_queries: tuple[str, ...] = ()
    prefix_hit_rate: str = ""  # gauge (SGLang)
    spec_accepted: str = ""  # counters (vLLM)
    spec_drafts: str = ""
    spec_draft_tokens: str = ""
    spec_accept_length: str = ""  # gauge (SGLang)
    kv_capacity_tokens: str = ""  # gauge (SGLang)

    def histograms(self) -> tuple[HistogramNames, ...]:
        return (self.ttft, self.itl, self.e2e, self.queue_time)


@dataclass(frozen=True)
class JsonIterationStats:
    """TensorRT-LLM's `/metrics` JSON: field names of one `IterationStats` entry."""

    flavor: str
    version: str
    source: str
    iteration: str = "iter"
    running: str = "numActiveRequests"
    waiting: str = "numQueuedRequests"
    kv_stats: str = "kvCacheStats"
    kv_max_blocks: str = "maxNumBlocks"
    kv_used_blocks: str = "usedNumBlocks"
    kv_hit_rate: str = "cacheHitRate"
    # Reading `/metrics` drains the executor's stats queue and waits up to 2 s for more
    # (router/engine_metrics.py): a reader takes it off the health-probe loop.
    long_poll: bool = True


# SGLang 0.5.23 TokenizerMetricsCollector / SchedulerMetricsCollector default bounds.
_SGLANG_TTFT = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0,
                80.0, 100.0, 200.0, 400.0)  # fmt: skip
_SGLANG_ITL = (0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04,
               0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0)  # fmt: skip
_SGLANG_E2E = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0,
               80.0, 100.0, 200.0, 400.0, 600.0, 1200.0, 1800.0, 2400.0)  # fmt: skip
_SGLANG_QUEUE = (0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0,
                 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 200.0,
                 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 1200.0, 1400.0,
                 1600.0, 1800.0, 2000.0, 2500.0, 3000.0)  # fmt: skip
_SGLANG_REQUEST = ("model_name", "engine_type")
_SGLANG_STREAM = (*_SGLANG_REQUEST, "is_streaming")
_SGLANG_SCHEDULER = ("model_name", "engine_type", "tp_rank", "pp_rank", "moe_ep_rank")
SGLANG_0_5_23 = PrometheusMetrics(
    flavor=FLAVOR_SGLANG,
    version="0.5.23",
    source="sglang 0.5.23 wheel: sglang/srt/observability/metrics_collector.py",
    running="sglang:num_running_reqs",
    waiting="sglang:num_queue_reqs",
    kv_usage=("sglang:token_usage",),
    prompt_tokens="sglang:prompt_tokens_total",
    generation_tokens="sglang:generation_tokens_total",
    requests_finished="sglang:num_requests_total",
    ttft=HistogramNames("sglang:time_to_first_token_seconds", _SGLANG_TTFT, _SGLANG_STREAM),
    itl=HistogramNames("sglang:inter_token_latency_seconds", _SGLANG_ITL, _SGLANG_REQUEST),
    e2e=HistogramNames("sglang:e2e_request_latency_seconds", _SGLANG_E2E, _SGLANG_STREAM),
    queue_time=HistogramNames("sglang:queue_time_seconds", _SGLANG_QUEUE, _SGLANG_SCHEDULER),
    gauge_labels=_SGLANG_SCHEDULER,
    prefix_hit_rate="sglang:cache_hit_rate",
    spec_accept_length="sglang:spec_accept_length",
    kv_capacity_tokens="sglang:max_total_num_tokens",
)

# vLLM 0.32.0 vllm/v1/metrics/buckets.py.
_VLLM_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
              5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
_VLLM_ITL = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
             7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
_VLLM_REQUEST_LATENCY = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
                         40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
_VLLM_LABELS = ("model_name", "engine")
VLLM_0_32 = PrometheusMetrics(
    flavor=FLAVOR_VLLM,
    version="0.32.0",
    source="vllm 0.32.0 wheel (5df63a720): vllm/v1/metrics/buckets.py, loggers.py",
    running="vllm:num_requests_running",
    waiting="vllm:num_requests_waiting",
    kv_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    prompt_tokens="vllm:prompt_tokens_total",
    generation_tokens="vllm:generation_tokens_total",
    requests_finished="vllm:request_success_total",
    ttft=HistogramNames("vllm:time_to_first_token_seconds", _VLLM_TTFT, _VLLM_LABELS),
    itl=HistogramNames("vllm:inter_token_latency_seconds", _VLLM_ITL, _VLLM_LABELS),
    e2e=HistogramNames("vllm:e2e_request_latency_seconds", _VLLM_REQUEST_LATENCY, _VLLM_LABELS),
    queue_time=HistogramNames(
        "vllm:request_queue_time_seconds", _VLLM_REQUEST_LATENCY, _VLLM_LABELS
    ),
    gauge_labels=_VLLM_LABELS,
    prefix_hits=("vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits"),
    prefix_queries=("vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries"),
    spec_accepted="vllm:spec_decode_num_accepted_tokens_total",
    spec_drafts="vllm:spec_decode_num_drafts_total",
    spec_draft_tokens="vllm:spec_decode_num_draft_tokens_total",
)

TRTLLM_1_2 = JsonIterationStats(
    flavor=FLAVOR_TRTLLM,
    version="1.2.0rc2",
    source="tensorrt_llm/serve/openai_server.py @00057725; jsonSerialization.cpp @086f692",
)


# The versions glmctl targets, one per engine (an engine's new version: add an object and
# point its flavour here).
PROMETHEUS_ENGINES: tuple[PrometheusMetrics, ...] = (VLLM_0_32, SGLANG_0_5_23)
BY_FLAVOR: dict[str, PrometheusMetrics] = {m.flavor: m for m in PROMETHEUS_ENGINES}
JSON_ENGINES: tuple[JsonIterationStats, ...] = (TRTLLM_1_2,)
JSON_BY_FLAVOR: dict[str, JsonIterationStats] = {m.flavor: m for m in JSON_ENGINES}


def prometheus_metrics(flavor: str) -> PrometheusMetrics:
    """The targeted version's Prometheus names of `flavor` (`vllm`, `sglang`); KeyError else."""
    return BY_FLAVOR[str(flavor)]


def le_text(bound: float) -> str:
    """A bucket bound as prometheus_client prints it in `le` (what a rule must select)."""
    return repr(float(bound))


def running_names() -> tuple[str, ...]:
    """Every engine's running-requests gauge (what an engine process wrapper sums)."""
    return tuple(m.running for m in PROMETHEUS_ENGINES)
