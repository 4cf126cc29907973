"""What the engines export about prefill/decode disaggregation, per engine and version: the
one place glmctl spells PD metric names, their labels and histogram bounds (pure data).

observe/pd.py builds the PD recording rules, alerts and dashboard from these objects.
Transcribed from the wheels glmctl pins (see catalog/engine_metrics.py for the pins):

- SGLang 0.5.23, `sglang/srt/observability/metrics_collector.py`,
  `SchedulerMetricsCollector` ("PD disaggregation" block): gauges
  `num_prefill_bootstrap_queue_reqs`, `num_prefill_inflight_queue_reqs` (prefill side),
  `num_decode_prealloc_queue_reqs`, `num_decode_transfer_queue_reqs` (decode side);
  histograms `kv_transfer_latency_ms`, `kv_transfer_speed_gb_s`, `kv_transfer_bootstrap_ms`;
  counters `num_bootstrap_failed_reqs_total`, `num_transfer_failed_reqs_total`. Every
  scheduler series carries `engine_type` = prefill | decode | unified
  (`DisaggregationMode.to_engine_type`, srt/disaggregation/utils.py), so a pool is
  selected by that label. 0.5.23 has no `num_prefill_prealloc_queue_reqs` (older notes
  name one): the prefill side's queues are bootstrap and inflight.
- vLLM 0.32.0, NixlConnector: `vllm/distributed/kv_transfer/kv_connector/v1/nixl/stats.py`
  `NixlPromMetrics`, labels `model_name`, `engine` (v1/metrics/loggers.py): histograms
  `vllm:nixl_xfer_time_seconds` (transfer duration), `vllm:nixl_bytes_transferred`;
  counters `vllm:nixl_num_failed_transfers`, `vllm:nixl_num_kv_expired_reqs` (declared
  without `_total`; prometheus_client exposes counters with it). vLLM labels no pool:
  a PD group's engine scrape targets carry the target label `PD_LABEL` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.catalog.engine_metrics import (
    FLAVOR_SGLANG,
    FLAVOR_VLLM,
    SGLANG_0_5_23,
    VLLM_0_32,
    HistogramNames,
)

# Target label on a PD group's engine scrape targets: its pool (`EngineGroupPlan.pd`).
PD_LABEL = "pd"
PREFILL, DECODE = "prefill", "decode"
BOOTSTRAP, KV_TRANSFER_PARAMS = "bootstrap", "kv_transfer_params"


@dataclass(frozen=True)
class PdQueue:
    """One PD queue gauge: which pool holds it and what waits in it."""

    name: str
    pool: str  # prefill | decode
    stage: str  # the glmctl name of the queue (`queue` label of glmctl:pd_queue_requests)


@dataclass(frozen=True)
class PdMetrics:
    """The PD series of one engine version (empty fields: the engine has none)."""

    flavor: str
    version: str
    source: str
    transfer_latency: HistogramNames  # per transfer
    transfer_latency_unit_s: float  # seconds per unit of `transfer_latency`
    transfer_failures: tuple[str, ...]  # counters, exposed names (with _total)
    queues: tuple[PdQueue, ...] = ()
    transfer_speed: HistogramNames | None = None  # GB/s per transfer
    transfer_bytes: HistogramNames | None = None  # bytes per transfer
    pool_label: str = PD_LABEL  # the label that names a series' pool (engine's or target's)
    waiting: str = ""  # the engine's own waiting-queue gauge (read per pool)
    failed_bootstraps: str = ""  # the one of `transfer_failures` counting bootstrap failures
    # How a request's KV is handed from P to D on the wire (router/pd_route.py):
    # BOOTSTRAP (SGLang: bootstrap_host/port/room sent to both) or KV_TRANSFER_PARAMS
    # (vLLM: P answers `kv_transfer_params` that D is given).
    handoff: str = ""

    def queue(self, stage: str) -> str:
        """The gauge of the queue named `stage` (PdQueue.stage); "": the engine has none."""
        return next((q.name for q in self.queues if q.stage == stage), "")


_SG_LABELS = ("model_name", "engine_type", "tp_rank", "pp_rank", "moe_ep_rank")
SGLANG_0_5_23_PD = PdMetrics(
    flavor=FLAVOR_SGLANG,
    version="0.5.23",
    source="sglang 0.5.23 wheel: sglang/srt/observability/metrics_collector.py",
    transfer_latency=HistogramNames(
        "sglang:kv_transfer_latency_ms",
        (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
        _SG_LABELS,
    ),
    transfer_latency_unit_s=0.001,
    transfer_failures=(
        "sglang:num_bootstrap_failed_reqs_total",
        "sglang:num_transfer_failed_reqs_total",
    ),
    queues=(
        PdQueue("sglang:num_prefill_bootstrap_queue_reqs", PREFILL, "prefill_bootstrap"),
        PdQueue("sglang:num_prefill_inflight_queue_reqs", PREFILL, "prefill_transfer"),
        PdQueue("sglang:num_decode_prealloc_queue_reqs", DECODE, "decode_prealloc"),
        PdQueue("sglang:num_decode_transfer_queue_reqs", DECODE, "decode_transfer"),
    ),
    transfer_speed=HistogramNames(
        "sglang:kv_transfer_speed_gb_s", (0.1, 0.5, 1, 5, 10, 25, 50, 100, 200, 400), _SG_LABELS
    ),
    pool_label="engine_type",
    waiting=SGLANG_0_5_23.waiting,
    failed_bootstraps="sglang:num_bootstrap_failed_reqs_total",
    handoff=BOOTSTRAP,  # sglang/srt/disaggregation: bootstrap_room in the request
)

_V_LABELS = ("model_name", "engine")
VLLM_0_32_NIXL = PdMetrics(
    flavor=FLAVOR_VLLM,
    version="0.32.0",
    source="vllm 0.32.0 wheel: vllm/distributed/kv_transfer/kv_connector/v1/nixl/stats.py",
    transfer_latency=HistogramNames(
        "vllm:nixl_xfer_time_seconds",
        (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 5.0),
        _V_LABELS,
    ),
    transfer_latency_unit_s=1.0,
    transfer_failures=("vllm:nixl_num_failed_transfers_total",),
    transfer_bytes=HistogramNames(
        "vllm:nixl_bytes_transferred",
        tuple(float(2 ** (10 + i)) for i in range(1, 25, 2)),
        _V_LABELS,
    ),
    waiting=VLLM_0_32.waiting,
    handoff=KV_TRANSFER_PARAMS,  # nixl connector: request_finished returns the params
)

PD_ENGINES: tuple[PdMetrics, ...] = (SGLANG_0_5_23_PD, VLLM_0_32_NIXL)
PD_BY_FLAVOR: dict[str, PdMetrics] = {m.flavor: m for m in PD_ENGINES}
