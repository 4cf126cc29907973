"""The metrics catalogue: every series glmctl collects, shows or alerts on, in one place.

Dashboards (dashboards.py), recording and alert rules (rules.py), `glmctl top` (top.py)
and the README take names from here, never spell them themselves.

Sources: engine names, labels and histogram bounds come from catalog/engine_metrics.py (one
object per engine version, transcribed from vLLM's and SGLang's source and pinned there);
the simulator speaks both (controlplane/engines/sim/metrics.py). Router names are
controlplane/router/metrics.py's.
Autoscaler names are the autoscaling engineer's contract (published on the router's
/metrics). Agent names are published by the observe agent (backends/ray/monitor.py).

Every scraped series also carries the target labels of `TARGET_LABELS` (written into the
file-SD targets from the live endpoint registry; the same ids `glmctl status` prints).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controlplane.catalog import engine_metrics as mn


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
    M("glmctl_router_requests_total", C, R, "Requests answered.", ("route", "status", "outcome")),
    M("glmctl_router_errors_total", C, R, "Errors by kind (429 causes, upstream).", ("kind",)),
    M("glmctl_router_decisions_total", C, R, "Routing decisions.",
      ("policy", "endpoint", "reason")),
    M("glmctl_router_retries_total", C, R, "Retries on another endpoint before the first byte."),
    M("glmctl_router_prefix_blocks_total", C, R, "Prompt prefix blocks routed by prefix."),
    M("glmctl_router_prefix_blocks_matched_total", C, R, "Of those, cached on the chosen one."),
    M("glmctl_router_prefix_hit_ratio", G, R, "Matched / total prefix blocks so far."),
    M("glmctl_router_kv_prompt_blocks_total", C, R, "precise_prefix: prompt KV blocks.",
      ("endpoint",)),
    M("glmctl_router_kv_predicted_hit_blocks_total", C, R,
      "precise_prefix: of those, cached on the chosen one per its KV events.", ("endpoint",)),
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

    def names(self) -> tuple[str, ...]:
        return (self.vllm, self.sglang)


_V, _S = mn.VLLM_0_32, mn.SGLANG_0_5_23
ENGINE = (
    EngineSeries("glmctl:engine_running", G, _V.running, _S.running,
                 "Requests in the running batch."),
    EngineSeries("glmctl:engine_waiting", G, _V.waiting, _S.waiting,
                 "Requests waiting in the queue."),
    EngineSeries("glmctl:engine_kv_usage", G, _V.kv_usage[0], _S.kv_usage[0],
                 "KV cache usage, 0-1."),
    EngineSeries("glmctl:engine_prompt_tokens", C, _V.prompt_tokens, _S.prompt_tokens,
                 "Prompt (prefill) tokens."),
    EngineSeries("glmctl:engine_generation_tokens", C, _V.generation_tokens,
                 _S.generation_tokens, "Generated tokens."),
    EngineSeries("glmctl:engine_requests", C, _V.requests_finished, _S.requests_finished,
                 "Finished requests."),
    EngineSeries("glmctl:engine_ttft_seconds", H, _V.ttft.name, _S.ttft.name,
                 "Time to first token."),
    EngineSeries("glmctl:engine_itl_seconds", H, _V.itl.name, _S.itl.name,
                 "Inter-token latency."),
    EngineSeries("glmctl:engine_e2e_seconds", H, _V.e2e.name, _S.e2e.name,
                 "End-to-end request latency."),
)  # fmt: skip
# Ratios each flavour exposes differently (see rules.py for how they are unified).
VLLM_PREFIX = (_V.prefix_hits[0], _V.prefix_queries[0])
SGLANG_PREFIX_GAUGE = _S.prefix_hit_rate
VLLM_SPEC = (_V.spec_accepted, _V.spec_drafts)
SGLANG_SPEC_GAUGE = _S.spec_accept_length
SGLANG_KV_CAPACITY = _S.kv_capacity_tokens
PREFIX_HIT_RATIO = "glmctl:engine_prefix_cache_hit_ratio"
SPEC_ACCEPT_LENGTH = "glmctl:engine_spec_accept_length"


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
