"""Prometheus metrics of the simulated engine, named and labelled like the real engines.

Written as text directly (a scrape of a busy simulator must stay cheap); the output parses
with `prometheus_client.parser` and has the same shape as `generate_latest`. Names and
labels follow vLLM (`vllm/v1/metrics/loggers.py`: labels `model_name`, `engine`) and SGLang
(`sglang/srt/metrics/collector.py`: scheduler gauges labelled `model_name`, `engine_type`,
`tp_rank`, `pp_rank`; request metrics labelled `model_name`). Times are simulated seconds
(wall seconds x time_scale), what the engine being simulated would report.

TensorRT-LLM's `/metrics` is no Prometheus text but a JSON list of iteration stats
(router/engine_metrics.py says where from): `iteration_stats` builds one entry with the
C++ `IterationStats` field names (cpp/tensorrt_llm/executor/jsonSerialization.cpp @086f692,
the 1.2 field set without the later ForwardPassMetrics fields).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

from controlplane.engines.sim.tokens import BLOCK_TOKENS
from controlplane.spec import EngineKind

# Bucket bounds of vLLM's histograms (vllm/v1/metrics/loggers.py), used for both flavours.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
               5.0, 7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                   50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
FINISH_REASONS = ("stop", "length", "abort")
SAMPLE_LOG_CAP = 2_000_000


class Histogram:
    """A cumulative-on-render histogram (observe is one bisect and three adds)."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str, help_text: str) -> list[str]:
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running}.0')
        out.append(f"{name}_count{{{labels}}} {self.count}.0")
        out.append(f"{name}_sum{{{labels}}} {self.total!r}")
        return out


@dataclass
class EngineMetrics:
    """Counters and histograms the scheduler updates; gauges come from its state."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    requests_finished: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(FINISH_REASONS, 0)
    )
    prefix_queries: int = 0
    prefix_hits: int = 0
    spec_drafts: int = 0
    spec_draft_tokens: int = 0
    spec_accepted_tokens: int = 0
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    itl: Histogram = field(default_factory=lambda: Histogram(ITL_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    queue_time: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    # Every TTFT and inter-token gap exactly (not bucketed), in the model's time: from the
    # steps' scheduled ends, so a late wake-up of this host (which the histograms, timed by
    # the wall clock, do show) never reaches them. Load tests check their client-side timing
    # against them (`/sim/ttft`, `/sim/itl`), and sweeps at accelerated time judge by them.
    # Capped to bound memory.
    ttft_log: list[float] = field(default_factory=list)
    itl_log: list[float] = field(default_factory=list)

    def log_ttft(self, observed: float, model: float) -> None:
        self.ttft.observe(observed)
        if len(self.ttft_log) < SAMPLE_LOG_CAP:
            self.ttft_log.append(model)

    def log_itl(self, observed: float, model: float) -> None:
        self.itl.observe(observed)
        if len(self.itl_log) < SAMPLE_LOG_CAP:
            self.itl_log.append(model)


@dataclass(frozen=True)
class EngineGauges:
    running: int
    waiting: int
    kv_usage: float
    used_tokens: int
    kv_token_capacity: int
    spec_accept_length: float
    gen_throughput: float


@dataclass(frozen=True)
class KvBlocks:
    """The KV pool in blocks, as TensorRT-LLM's `kvCacheStats` counts it."""

    total: int
    used: int
    tokens_per_block: int


def iteration_stats(
    iteration: int, g: EngineGauges, kv: KvBlocks, max_batch: int, m: EngineMetrics
) -> dict[str, object]:
    """One TensorRT-LLM `IterationStats` entry for the state after step `iteration`."""
    hit_rate = m.prefix_hits / m.prefix_queries if m.prefix_queries else 0.0
    kv_stats = {
        "maxNumBlocks": kv.total, "freeNumBlocks": kv.total - kv.used,
        "usedNumBlocks": kv.used, "tokensPerBlock": kv.tokens_per_block,
        "allocTotalBlocks": kv.used, "allocNewBlocks": 0, "reusedBlocks": 0,
        "missedBlocks": 0, "cacheHitRate": hit_rate,
    }  # fmt: skip
    batching = {
        "numScheduledRequests": g.running, "numContextRequests": 0,
        "numGenRequests": g.running, "numPausedRequests": 0, "numCtxTokens": 0,
        "microBatchId": 0, "avgNumDecodedTokensPerIter": 1.0,
    }  # fmt: skip
    return {
        "timestamp": time.strftime("%m-%d-%Y %H:%M:%S"), "iter": iteration,
        "iterLatencyMS": 0.0, "newActiveRequestsQueueLatencyMS": 0.0,
        "numNewActiveRequests": 0, "numActiveRequests": g.running,
        "numQueuedRequests": g.waiting, "numCompletedRequests": 0,
        "maxNumActiveRequests": max_batch, "maxBatchSizeStatic": max_batch,
        "maxBatchSizeTunerRecommended": max_batch, "maxBatchSizeRuntime": max_batch,
        "maxNumTokensStatic": 0, "maxNumTokensTunerRecommended": 0, "maxNumTokensRuntime": 0,
        "gpuMemUsage": 0, "cpuMemUsage": 0, "pinnedMemUsage": 0,
        "kvCacheStats": kv_stats, "staticBatchingStats": None,
        "inflightBatchingStats": batching, "specDecodingStats": None,
    }  # fmt: skip


def render(flavor: EngineKind, model_name: str, m: EngineMetrics, g: EngineGauges) -> str:
    """The Prometheus `/metrics` text of vLLM or SGLang (TensorRT-LLM: `iteration_stats`)."""
    model = model_name.replace("\\", "\\\\").replace('"', '\\"')
    render_flavor = _render_vllm if flavor is EngineKind.VLLM else _render_sglang
    return "\n".join(render_flavor(model, m, g)) + "\n"


def _scalars(labels: str, rows: list[tuple[str, str, float, str]]) -> list[str]:
    out = []
    for kind, name, value, help_text in rows:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        out.append(f"{name}{{{labels}}} {float(value)!r}")
    return out


def _render_vllm(model: str, m: EngineMetrics, g: EngineGauges) -> list[str]:
    lb = f'engine="0",model_name="{model}"'
    out = _scalars(lb, [
        ("gauge", "vllm:num_requests_running", g.running,
         "Number of requests in model execution batches."),
        ("gauge", "vllm:num_requests_waiting", g.waiting,
         "Number of requests waiting to be processed."),
        ("gauge", "vllm:kv_cache_usage_perc", g.kv_usage,
         "KV-cache usage. 1 means 100 percent usage."),
        ("counter", "vllm:prefix_cache_queries_total", m.prefix_queries,
         "Prefix cache queries, in terms of number of queried tokens."),
        ("counter", "vllm:prefix_cache_hits_total", m.prefix_hits,
         "Prefix cache hits, in terms of number of cached tokens."),
        ("counter", "vllm:num_preemptions_total", 0,
         "Cumulative number of preemption from the engine."),
        ("counter", "vllm:prompt_tokens_total", m.prompt_tokens,
         "Number of prefill tokens processed."),
        ("counter", "vllm:generation_tokens_total", m.generation_tokens,
         "Number of generation tokens processed."),
    ])  # fmt: skip
    blocks = g.kv_token_capacity // BLOCK_TOKENS
    out += [
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
        "# TYPE vllm:cache_config_info gauge",
        f'vllm:cache_config_info{{block_size="{BLOCK_TOKENS}",enable_prefix_caching="True",'
        f'engine="0",num_gpu_blocks="{blocks}"}} 1.0',
        "# HELP vllm:request_success_total Count of successfully processed requests.",
        "# TYPE vllm:request_success_total counter",
    ]
    for reason, count in m.requests_finished.items():
        out.append(
            f'vllm:request_success_total{{{lb},finished_reason="{reason}"}} {float(count)!r}'
        )
    if m.spec_drafts:
        out += _scalars(lb, [
            ("counter", "vllm:spec_decode_num_drafts_total", m.spec_drafts,
             "Number of spec decoding drafts."),
            ("counter", "vllm:spec_decode_num_draft_tokens_total", m.spec_draft_tokens,
             "Number of draft tokens."),
            ("counter", "vllm:spec_decode_num_accepted_tokens_total", m.spec_accepted_tokens,
             "Number of accepted tokens."),
        ])  # fmt: skip
    out += m.ttft.lines("vllm:time_to_first_token_seconds", lb,
                        "Histogram of time to first token in seconds.")  # fmt: skip
    out += m.itl.lines("vllm:inter_token_latency_seconds", lb,
                       "Histogram of inter-token latency in seconds.")  # fmt: skip
    out += m.e2e.lines("vllm:e2e_request_latency_seconds", lb,
                       "Histogram of e2e request latency in seconds.")  # fmt: skip
    out += m.queue_time.lines("vllm:request_queue_time_seconds", lb,
                              "Histogram of time spent in WAITING phase for request.")  # fmt: skip
    return out


def _render_sglang(model: str, m: EngineMetrics, g: EngineGauges) -> list[str]:
    sched = f'engine_type="unified",model_name="{model}",pp_rank="0",tp_rank="0"'
    lb = f'model_name="{model}"'
    hit_rate = m.prefix_hits / m.prefix_queries if m.prefix_queries else 0.0
    finished = sum(m.requests_finished.values())
    out = _scalars(sched, [
        ("gauge", "sglang:num_running_reqs", g.running, "The number of running requests."),
        ("gauge", "sglang:num_queue_reqs", g.waiting,
         "The number of requests in the waiting queue."),
        ("gauge", "sglang:num_used_tokens", g.used_tokens, "The number of used tokens."),
        ("gauge", "sglang:token_usage", g.kv_usage, "The token usage."),
        ("gauge", "sglang:max_total_num_tokens", g.kv_token_capacity,
         "Maximum total number of tokens in the KV cache pool."),
        ("gauge", "sglang:cache_hit_rate", hit_rate, "The prefix cache hit rate."),
        ("gauge", "sglang:gen_throughput", g.gen_throughput,
         "The generation throughput (token/s)."),
        ("gauge", "sglang:spec_accept_length", g.spec_accept_length,
         "The average acceptance length of speculative decoding."),
    ])  # fmt: skip
    out += _scalars(lb, [
        ("counter", "sglang:prompt_tokens_total", m.prompt_tokens,
         "Number of prefill tokens processed."),
        ("counter", "sglang:generation_tokens_total", m.generation_tokens,
         "Number of generation tokens processed."),
        ("counter", "sglang:cached_tokens_total", m.prefix_hits,
         "Number of cached prompt tokens."),
        ("counter", "sglang:num_requests_total", finished, "Number of requests processed."),
    ])  # fmt: skip
    out += m.ttft.lines("sglang:time_to_first_token_seconds", lb,
                        "Histogram of time to first token in seconds.")  # fmt: skip
    out += m.itl.lines("sglang:inter_token_latency_seconds", lb,
                       "Histogram of inter-token latency in seconds.")  # fmt: skip
    out += m.e2e.lines("sglang:e2e_request_latency_seconds", lb,
                       "Histogram of End-to-end request latency in seconds")  # fmt: skip
    out += m.queue_time.lines("sglang:queue_time_seconds", sched,
                              "Histogram of queueing time in seconds.")  # fmt: skip
    return out
