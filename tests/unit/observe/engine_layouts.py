"""The engines' real histogram layouts, transcribed here from their source independently of
controlplane/catalog/engine_metrics.py, so tests can check glmctl's copy and run the rules on
what a real engine exports.

- SGLang 0.5.23 (PyPI wheel sglang-0.5.23-cp311-cp311-manylinux_2_34_x86_64.whl),
  sglang/srt/observability/metrics_collector.py, `TokenizerMetricsCollector.__init__`
  defaults: `bucket_time_to_first_token`, `bucket_inter_token_latency`. TTFT is labelled
  model_name, engine_type, is_streaming; ITL model_name, engine_type.
- vLLM 0.32.0 (PyPI wheel vllm-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl, commit
  5df63a720), vllm/v1/metrics/buckets.py: TIME_TO_FIRST_TOKEN_BUCKETS,
  INTER_TOKEN_LATENCY_BUCKETS; labels model_name, engine (loggers.py).

Bounds are written as prometheus_client prints them in `le`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    engine: str
    ttft: str
    itl: str
    ttft_le: tuple[str, ...]
    itl_le: tuple[str, ...]
    ttft_label_sets: tuple[str, ...]  # extra labels; each set gets a share of the requests
    itl_label_sets: tuple[str, ...]


SGLANG = Layout(
    "sglang",
    "sglang:time_to_first_token_seconds",
    "sglang:inter_token_latency_seconds",
    ("0.1", "0.2", "0.4", "0.6", "0.8", "1.0", "2.0", "4.0", "6.0", "8.0", "10.0", "20.0",
     "40.0", "60.0", "80.0", "100.0", "200.0", "400.0"),
    ("0.002", "0.004", "0.006", "0.008", "0.01", "0.015", "0.02", "0.025", "0.03", "0.035",
     "0.04", "0.06", "0.08", "0.1", "0.2", "0.4", "0.6", "0.8", "1.0", "2.0", "4.0", "6.0",
     "8.0"),
    ('model_name="m",engine_type="unified",is_streaming="true"',
     'model_name="m",engine_type="unified",is_streaming="false"'),
    ('model_name="m",engine_type="unified"',),
)  # fmt: skip
VLLM = Layout(
    "vllm",
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    ("0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75",
     "1.0", "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "160.0", "640.0", "2560.0"),
    ("0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.3", "0.4", "0.5", "0.75",
     "1.0", "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0"),
    ('model_name="m",engine="0"',),
    ('model_name="m",engine="0"',),
)  # fmt: skip
LAYOUTS = (SGLANG, VLLM)
