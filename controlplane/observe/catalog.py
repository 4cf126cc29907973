"""The metrics catalogue: every series glmctl collects, shows or alerts on, in one place.

Dashboards (dashboards.py), recording and alert rules (rules.py), `glmctl top` (top.py)
and the README take names from here, never spell them themselves.

Sources: engine names are vLLM V1's (vllm docs/design/metrics.md) and SGLang's
(python/sglang/srt/metrics/collector.py), as collected in
../shared/reference/operations-anchors.md section C; the simulator speaks both
(controlplane/engines/sim/metrics.py). Router names are controlplane/router/metrics.py's.
Autoscaler names are the autoscaling engineer's contract (published on the router's
/metrics). Agent names are published by the observe agent (backends/ray/monitor.py).

Every scraped series also carries the target labels of `TARGET_LABELS` (written into the
file-SD targets from the live endpoint registry; the same ids `glmctl status` prints).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Source(StrEnum):
    ROUTER = "router"
    AUTOSCALER = "autoscaler"
    AGENT = "agent"
    VLLM = "vllm"
    SGLANG = "sglang"
    RECORDED = "recorded"  # glmctl:* series made by recording rules


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    source: Source
    help: str
    labels: tuple[str, ...] = ()


# Target labels every scraped series carries (set by file-SD, see observe/prometheus.py).
DEPLOYMENT, MODEL, REPLICA, NODE_RANK = "deployment", "model", "replica", "node_rank"
TARGET_LABELS = (DEPLOYMENT, MODEL, REPLICA, NODE_RANK)
# Prometheus jobs of the file-SD targets.
JOB_ENGINE, JOB_ROUTER, JOB_AGENT = "glmctl-engine", "glmctl-router", "glmctl-agent"

M, C, G, H = Metric, Kind.COUNTER, Kind.GAUGE, Kind.HISTOGRAM
R, A, AG = Source.ROUTER, Source.AUTOSCALER, Source.AGENT

ROUTER = (
    M("glmctl_router_requests_total", C, R, "Requests answered.", ("route", "status")),
    M("glmctl_router_errors_total", C, R, "Errors by kind (429 causes, upstream).", ("kind",)),
    M("glmctl_router_decisions_total", C, R, "Routing decisions.",
      ("policy", "endpoint", "reason")),
    M("glmctl_router_retries_total", C, R, "Retries on another endpoint before the first byte."),
    M("glmctl_router_prefix_blocks_total", C, R, "Prompt prefix blocks routed by prefix."),
    M("glmctl_router_prefix_blocks_matched_total", C, R, "Of those, cached on the chosen one."),
    M("glmctl_router_prefix_hit_ratio", G, R, "Matched / total prefix blocks so far."),
    M("glmctl_router_inflight", G, R, "Requests in flight per endpoint.", ("endpoint",)),
    M("glmctl_router_ttft_seconds", H, R, "Time to the first upstream byte."),
    M("glmctl_router_e2e_seconds", H, R, "Time to the last byte."),
    M("glmctl_router_redis_seconds", H, R, "Latency of the routing lookup in Redis."),
    M("glmctl_router_redis_up", G, R, "1 while the answering router worker reaches Redis."),
    M("glmctl_router_overflow_total", C, R, "Requests sent to overflow endpoints.",
      ("reason", "endpoint")),
    M("glmctl_router_endpoint_up", G, R, "1 while an endpoint is healthy (external: kind).",
      ("endpoint", "kind", "role")),
)  # fmt: skip
AUTOSCALER = (
    M("glmctl_autoscale_desired_replicas", G, A, "Replicas the policy wants.", ("deployment",)),
    M("glmctl_autoscale_running_replicas", G, A, "Replicas running.", ("deployment",)),
    M("glmctl_autoscale_max_replicas", G, A, "Replicas the cluster holds.", ("deployment",)),
    M("glmctl_autoscale_overflow_inflight", G, A,
      "Requests on overflow endpoints, counted as local demand.", ("deployment",)),
    M("glmctl_autoscale_decisions_total", C, A, "Scaling decisions.",
      ("deployment", "direction", "reason")),
)  # fmt: skip
AGENT = (
    M("glmctl_deployment_replicas_wanted", G, AG, "Replicas applied or scaled to."),
    M("glmctl_deployment_replicas_registered", G, AG, "Replicas healthy in the registry."),
    M("glmctl_replica_rank_up", G, AG, "1 while a node rank's worker process lives."),
    M("glmctl_plan_gpu_memory_bytes", G, AG,
      "Per-GPU memory the capacity model planned, by component.", ("component",)),
    M("glmctl_plan_host_memory_bytes", G, AG, "Host RAM the capacity model planned per node."),
    M("glmctl_node_memory_available_bytes", G, AG, "MemAvailable of the host (embedded)."),
)  # fmt: skip


@dataclass(frozen=True)
class EngineSeries:
    """One unified engine series and the name each flavour uses for it."""

    unified: str  # the glmctl:engine_* recording-rule name
    kind: Kind
    vllm: str
    sglang: str
    help: str


ENGINE = (
    EngineSeries("glmctl:engine_running", G, "vllm:num_requests_running",
                 "sglang:num_running_reqs", "Requests in the running batch."),
    EngineSeries("glmctl:engine_waiting", G, "vllm:num_requests_waiting",
                 "sglang:num_queue_reqs", "Requests waiting in the queue."),
    EngineSeries("glmctl:engine_kv_usage", G, "vllm:kv_cache_usage_perc",
                 "sglang:token_usage", "KV cache usage, 0-1."),
    EngineSeries("glmctl:engine_prompt_tokens", C, "vllm:prompt_tokens_total",
                 "sglang:prompt_tokens_total", "Prompt (prefill) tokens."),
    EngineSeries("glmctl:engine_generation_tokens", C, "vllm:generation_tokens_total",
                 "sglang:generation_tokens_total", "Generated tokens."),
    EngineSeries("glmctl:engine_requests", C, "vllm:request_success_total",
                 "sglang:num_requests_total", "Finished requests."),
    EngineSeries("glmctl:engine_ttft_seconds", H, "vllm:time_to_first_token_seconds",
                 "sglang:time_to_first_token_seconds", "Time to first token."),
    EngineSeries("glmctl:engine_itl_seconds", H, "vllm:inter_token_latency_seconds",
                 "sglang:inter_token_latency_seconds", "Inter-token latency."),
    EngineSeries("glmctl:engine_e2e_seconds", H, "vllm:e2e_request_latency_seconds",
                 "sglang:e2e_request_latency_seconds", "End-to-end request latency."),
)  # fmt: skip
# Ratios each flavour exposes differently (see rules.py for how they are unified).
VLLM_PREFIX = ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total")
SGLANG_PREFIX_GAUGE = "sglang:cache_hit_rate"
VLLM_SPEC = ("vllm:spec_decode_num_accepted_tokens_total", "vllm:spec_decode_num_drafts_total")
SGLANG_SPEC_GAUGE = "sglang:spec_accept_length"
PREFIX_HIT_RATIO = "glmctl:engine_prefix_cache_hit_ratio"
SPEC_ACCEPT_LENGTH = "glmctl:engine_spec_accept_length"

# Histogram bucket bounds both flavours use for TTFT and ITL here (vLLM's,
# vllm/v1/metrics/loggers.py; the simulator copies them). SLO rules interpolate between them.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
               5.0, 7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip


def engine_selector(series: EngineSeries, suffix: str = "", matchers: str = "") -> str:
    """A selector matching both flavours' names of `series` (one of them is present)."""
    names = f"{series.vllm}{suffix}|{series.sglang}{suffix}"
    extra = f",{matchers}" if matchers else ""
    return f'{{__name__=~"{names}"{extra}}}'


def engine_series(unified: str) -> EngineSeries:
    """The catalogue entry of a glmctl:engine_* name."""
    for series in ENGINE:
        if series.unified == unified:
            return series
    raise KeyError(unified)


def all_metrics() -> tuple[Metric, ...]:
    """Every metric, raw and recorded, for docs and the dashboards' name check."""
    engine = tuple(
        Metric(s.unified, s.kind, Source.RECORDED, s.help, TARGET_LABELS) for s in ENGINE
    )
    return ROUTER + AUTOSCALER + AGENT + engine
