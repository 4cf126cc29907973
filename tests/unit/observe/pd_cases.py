"""Promtool cases of the PD alerts (observe/pd.py), on SGLang 0.5.23's real PD series: its
bucket bounds (catalog/pd_metrics.py) and its `engine_type` pool label. Merged into
test_alert_rules.CASES, so each fires on a broken input and stays quiet on a healthy one."""

from __future__ import annotations

from controlplane.catalog.engine_metrics import le_text
from controlplane.catalog.pd_metrics import SGLANG_0_5_23_PD as SG

TARGET = 'job="glmctl-engine",deployment="d",model="m",node_rank="0"'
PREFILL = f'{TARGET},replica="p1",engine_type="prefill",tp_rank="0"'
DECODE = f'{TARGET},replica="d1",engine_type="decode",tp_rank="0"'
FIRED = {"deployment": "d", "flavor": "sglang"}


def _s(series: str, values: str) -> dict[str, str]:
    return {"series": series, "values": values}


def _transfers(ms: float) -> list[dict[str, str]]:
    """Ten KV transfers a minute on the prefill replica, each taking `ms` milliseconds."""
    hist = SG.transfer_latency
    out = []
    for bound in (*hist.bounds, float("inf")):
        n = 10 if ms <= bound else 0
        le = "+Inf" if bound == float("inf") else le_text(bound)
        out.append(_s(f'{hist.name}_bucket{{{PREFILL},le="{le}"}}', f"0+{n}x30"))
    return out


def _pools(prefill_waiting: int, decode_prealloc: int) -> list[dict[str, str]]:
    waiting, prealloc = SG.waiting, "sglang:num_decode_prealloc_queue_reqs"
    return [
        _s(f"{waiting}{{{PREFILL}}}", f"{prefill_waiting}x30"),
        _s(f"{waiting}{{{DECODE}}}", "0x30"),
        _s(f"{prealloc}{{{DECODE}}}", f"{decode_prealloc}x30"),
    ]


PD_CASES = {
    # 2 s transfers (p99 interpolated in the 1000-2500 ms bucket) vs 20 ms ones.
    "GlmctlKvTransferSlow": (_transfers(2000), _transfers(20), "15m", FIRED),
    "GlmctlKvTransferFailing": (
        [_s(f"sglang:num_transfer_failed_reqs_total{{{PREFILL}}}", "0+1x30")],
        [_s(f"sglang:num_transfer_failed_reqs_total{{{PREFILL}}}", "0x30")],
        "10m", FIRED,
    ),
    # 20 waiting for prefill, decode idle: prefill is short. Both backlogged: the ratio is
    # fine, the deployment is simply full (the queue alert's business).
    "GlmctlPdPoolsUnbalanced": (_pools(20, 0), _pools(20, 20), "15m", {**FIRED, "pool": "prefill"}),
}  # fmt: skip
