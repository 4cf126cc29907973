"""Prometheus metrics of the simulated engine, named, labelled and bucketed like the real
engines (catalog/engine_metrics.py: each flavour's names, labels and bucket bounds for the
targeted version, transcribed from the engine's source).

Histograms observe into the union of every flavour's bounds and render only the bounds of
the flavour asked for: a cumulative count at one of its bounds is exact, since that bound
is in the union, so an SGLang-flavoured simulator shows SGLang's own `le` values.

Written as text directly (a scrape of a busy simulator must stay cheap); the output parses
with `prometheus_client.parser` and has the same shape as `generate_latest`. SGLang's
`is_streaming` label is "true" or "false" by the request's `stream`, and a series appears
once a request of that kind finished, as SGLang 0.5.23 counts them
(observability/metrics_collector.py `observe_one_finished_request`,
`observe_time_to_first_token`). Times are simulated seconds
(wall seconds x time_scale), what the engine being simulated would report.

TensorRT-LLM's `/metrics` is no Prometheus text but a JSON list of iteration stats
(router/engine_metrics.py says where from): `iteration_stats` builds one entry with the
C++ `IterationStats` field names (cpp/tensorrt_llm/executor/jsonSerialization.cpp @086f692,
the 1.2 field set without the later ForwardPassMetrics fields).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controlplane.catalog import engine_metrics as mn
from controlplane.engines.sim.tokens import BLOCK_TOKENS
from controlplane.spec import EngineKind


def _union(pick: Callable[[mn.PrometheusMetrics], mn.HistogramNames]) -> tuple[float, ...]:
    return tuple(sorted({b for m in mn.PROMETHEUS_ENGINES for b in pick(m).bounds}))


# What the simulator observes into (see the module docstring).
TTFT_BUCKETS = _union(lambda m: m.ttft)
ITL_BUCKETS = _union(lambda m: m.itl)
LATENCY_BUCKETS = _union(lambda m: m.e2e)
QUEUE_BUCKETS = _union(lambda m: m.queue_time)
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

    def lines(self, spec: mn.HistogramNames, labels: str, help_text: str) -> list[str]:
        """Exposition lines with `spec`'s name and bounds (each one of `self.bounds`)."""
        name = spec.name
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        cumulative = [0]
        for n in self.counts:
            cumulative.append(cumulative[-1] + n)
        for bound in spec.bounds:
            running = cumulative[bisect_left(self.bounds, bound) + 1]
            out.append(f'{name}_bucket{{{labels},le="{mn.le_text(bound)}"}} {running}.0')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}.0')
        out.append(f"{name}_count{{{labels}}} {self.count}.0")
        out.append(f"{name}_sum{{{labels}}} {self.total!r}")
        return out


@dataclass
class StreamSeries:
    """SGLang's series split by `is_streaming`: counted when a request finishes."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    requests: int = 0
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))


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
    queue_time: Histogram = field(default_factory=lambda: Histogram(QUEUE_BUCKETS))
    # Every TTFT and inter-token gap exactly (not bucketed), in the model's time: from the
    # steps' scheduled ends, so a late wake-up of this host (which the histograms, timed by
    # the wall clock, do show) never reaches them. Load tests check their client-side timing
    # against them (`/sim/ttft`, `/sim/itl`), and sweeps at accelerated time judge by them.
    # Capped to bound memory.
    ttft_log: list[float] = field(default_factory=list)
    itl_log: list[float] = field(default_factory=list)

    # SGLang's `is_streaming` split ("true" | "false" -> its series), per finished request.
    by_stream: dict[str, StreamSeries] = field(default_factory=dict)

    def stream_series(self, stream: bool) -> StreamSeries:
        key = "true" if stream else "false"
        series = self.by_stream.get(key)
        if series is None:
            series = self.by_stream[key] = StreamSeries()
        return series

    def log_ttft(self, observed: float, model: float, stream: bool = False) -> None:
        self.ttft.observe(observed)
        self.stream_series(stream).ttft.observe(observed)
        if len(self.ttft_log) < SAMPLE_LOG_CAP:
            self.ttft_log.append(model)

    def log_finished(self, stream: bool, prompt: int, generated: int, e2e: float) -> None:
        """A request's end, as SGLang counts it (tokens, requests and e2e by `stream`)."""
        self.e2e.observe(e2e)
        series = self.stream_series(stream)
        series.prompt_tokens += prompt
        series.generation_tokens += generated
        series.requests += 1
        series.e2e.observe(e2e)

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


def render(
    flavor: EngineKind,
    model_name: str,
    m: EngineMetrics,
    g: EngineGauges,
    engine_type: str = "unified",
    extra: Callable[[str, str], list[str]] | None = None,
) -> str:
    """The Prometheus `/metrics` text of vLLM or SGLang (TensorRT-LLM: `iteration_stats`).
    `engine_type`: SGLang's label ("prefill" | "decode" in a PD pool); `extra(model,
    engine_type)`: more lines (the PD metrics, engines/sim/pd_metrics.py)."""
    model = model_name.replace("\\", "\\\\").replace('"', '\\"')
    if flavor is EngineKind.VLLM:
        lines = _render_vllm(model, m, g)
    else:
        lines = _render_sglang(model, m, g, engine_type)
    if extra is not None:
        lines += extra(model, engine_type)
    return "\n".join(lines) + "\n"


def _scalars(labels: str, rows: list[tuple[str, str, float, str]]) -> list[str]:
    out = []
    for kind, name, value, help_text in rows:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        out.append(f"{name}{{{labels}}} {float(value)!r}")
    return out


def _render_vllm(model: str, m: EngineMetrics, g: EngineGauges) -> list[str]:
    v = mn.VLLM_0_32
    lb = f'engine="0",model_name="{model}"'
    out = _scalars(lb, [
        ("gauge", v.running, g.running, "Number of requests in model execution batches."),
        ("gauge", v.waiting, g.waiting, "Number of requests waiting to be processed."),
        ("gauge", v.kv_usage[0], g.kv_usage, "KV-cache usage. 1 means 100 percent usage."),
        ("counter", v.prefix_queries[0], m.prefix_queries,
         "Prefix cache queries, in terms of number of queried tokens."),
        ("counter", v.prefix_hits[0], m.prefix_hits,
         "Prefix cache hits, in terms of number of cached tokens."),
        ("counter", "vllm:num_preemptions_total", 0,
         "Cumulative number of preemption from the engine."),
        ("counter", v.prompt_tokens, m.prompt_tokens, "Number of prefill tokens processed."),
        ("counter", v.generation_tokens, m.generation_tokens,
         "Number of generation tokens processed."),
    ])  # fmt: skip
    blocks = g.kv_token_capacity // BLOCK_TOKENS
    out += [
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
        "# TYPE vllm:cache_config_info gauge",
        f'vllm:cache_config_info{{block_size="{BLOCK_TOKENS}",enable_prefix_caching="True",'
        f'engine="0",num_gpu_blocks="{blocks}"}} 1.0',
        f"# HELP {v.requests_finished} Count of successfully processed requests.",
        f"# TYPE {v.requests_finished} counter",
    ]
    for reason, count in m.requests_finished.items():
        out.append(f'{v.requests_finished}{{{lb},finished_reason="{reason}"}} {float(count)!r}')
    if m.spec_drafts:
        out += _scalars(lb, [
            ("counter", v.spec_drafts, m.spec_drafts, "Number of spec decoding drafts."),
            ("counter", v.spec_draft_tokens, m.spec_draft_tokens, "Number of draft tokens."),
            ("counter", v.spec_accepted, m.spec_accepted_tokens, "Number of accepted tokens."),
        ])  # fmt: skip
    out += m.ttft.lines(v.ttft, lb, "Histogram of time to first token in seconds.")
    out += m.itl.lines(v.itl, lb, "Histogram of inter-token latency in seconds.")
    out += m.e2e.lines(v.e2e, lb, "Histogram of e2e request latency in seconds.")
    out += m.queue_time.lines(
        v.queue_time, lb, "Histogram of time spent in WAITING phase for request."
    )
    return out


def _render_sglang(model: str, m: EngineMetrics, g: EngineGauges, engine_type: str) -> list[str]:
    s = mn.SGLANG_0_5_23
    sched = (
        f'model_name="{model}",engine_type="{engine_type}",tp_rank="0",pp_rank="0",moe_ep_rank="0"'
    )
    lb = f'model_name="{model}",engine_type="{engine_type}"'
    hit_rate = m.prefix_hits / m.prefix_queries if m.prefix_queries else 0.0
    out = _scalars(sched, [
        ("gauge", s.running, g.running, "The number of running requests."),
        ("gauge", s.waiting, g.waiting, "The number of requests in the waiting queue."),
        ("gauge", "sglang:num_used_tokens", g.used_tokens, "The number of used tokens."),
        ("gauge", s.kv_usage[0], g.kv_usage, "The token usage."),
        ("gauge", s.kv_capacity_tokens, g.kv_token_capacity,
         "Maximum total number of tokens in the KV cache pool."),
        ("gauge", s.prefix_hit_rate, hit_rate, "The prefix cache hit rate."),
        ("gauge", "sglang:gen_throughput", g.gen_throughput,
         "The generation throughput (token/s)."),
        ("gauge", s.spec_accept_length, g.spec_accept_length,
         "The average acceptance length of speculative decoding."),
    ])  # fmt: skip
    streams = sorted(m.by_stream.items())
    counters = [
        (s.prompt_tokens, "Number of prefill tokens processed.", lambda x: x.prompt_tokens),
        (s.generation_tokens, "Number of generation tokens processed.",
         lambda x: x.generation_tokens),
        (s.requests_finished, "Number of requests processed.", lambda x: x.requests),
    ]  # fmt: skip
    for name, help_text, value in counters:  # one series per `is_streaming` value seen
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        out += [f'{name}{{{lb},is_streaming="{k}"}} {float(value(v))!r}' for k, v in streams]
    out += _scalars(f'{lb},cache_source="total"', [
        ("counter", "sglang:cached_tokens_total", m.prefix_hits, "Number of cached prompt tokens."),
    ])  # fmt: skip
    out += _stream_histograms(s.ttft, lb, streams, "ttft",
                              "Histogram of time to first token in seconds.")  # fmt: skip
    out += m.itl.lines(s.itl, lb, "Histogram of inter-token latency in seconds.")
    out += _stream_histograms(s.e2e, lb, streams, "e2e",
                              "Histogram of End-to-end request latency in seconds")  # fmt: skip
    out += m.queue_time.lines(s.queue_time, sched, "Histogram of queueing time in seconds.")
    return out


def _stream_histograms(
    spec: mn.HistogramNames,
    labels: str,
    streams: list[tuple[str, StreamSeries]],
    which: str,
    help_text: str,
) -> list[str]:
    """One histogram family with a series per `is_streaming` value (HELP/TYPE once)."""
    out = [f"# HELP {spec.name} {help_text}", f"# TYPE {spec.name} histogram"]
    for key, series in streams:
        hist = series.ttft if which == "ttft" else series.e2e
        out += hist.lines(spec, f'{labels},is_streaming="{key}"', help_text)[2:]
    return out
