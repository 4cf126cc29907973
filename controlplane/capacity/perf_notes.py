"""The assumptions behind one replica's performance estimate, as sentences for reports."""

from __future__ import annotations

from controlplane.capacity import constants as c
from controlplane.capacity.perf_constants import PerfConstants
from controlplane.capacity.timing_rules import TimingRule
from controlplane.catalog import Precision
from controlplane.spec import Topology


def assumptions(
    topo: Topology, tokens: float, k: PerfConstants, rule: TimingRule
) -> tuple[str, ...]:
    """What the estimate for `topo` rests on (numbers as the model uses them)."""
    gpu = topo.gpu
    peak = gpu.fp8_flops if topo.precision is Precision.FP8 and gpu.fp8_flops else gpu.bf16_flops
    stall = k.prefill_stall_s if rule.separate_prefill_pass else 0.0
    items = [
        f"HBM efficiency {c.HBM_EFFICIENCY:.0%} of {gpu.hbm_bandwidth / 1e12:.2f} TB/s per GPU"
        " for weight and KV reads.",
        f"Tensor-core efficiency {c.FLOPS_EFFICIENCY:.0%} of peak ({peak / 1e12:.0f} TFLOP/s"
        f" per GPU); MoE grouped GEMMs compute at least {k.moe_tile_tokens} rows per hit expert.",
        f"Per step {k.step_overhead_s * 1e3:.1f} ms fixed plus"
        f" {k.per_sequence_s * 1e6:.0f} us per running sequence; per decoder layer a"
        f" {k.layer_floor(gpu.name) * 1e6:.0f} us latency floor, added to the roofline"
        " terms (fitted to published runs in ops/calibration/perf_cases.py; error out of"
        " sample in docs/guides/performance-model.md).",
        f"Two all-reduces per layer under TP ({c.ALLREDUCE_LATENCY_INTRA_S * 1e6:.0f} us in a"
        f" node, {c.ALLREDUCE_LATENCY_INTER_S * 1e6:.0f} us across); with expert parallelism"
        f" a dispatch and a combine per MoE layer ({k.a2a_latency_intra_s * 1e6:.0f} us /"
        f" {k.a2a_latency_inter_s * 1e6:.0f} us plus the routed activations at"
        f" {k.a2a_bandwidth_efficiency:.0%} of the interconnect).",
        f"Each prefill pass adds a {stall * 1e3:.0f} ms stall that running decodes wait for"
        " (SGLang's separate, un-graphed prefill forward; 0 where prompt chunks ride in the"
        " decode step, as in vLLM).",
        "MoE routing is uniform: a batch of N tokens reads E x (1 - (1 - k/E)^N) distinct"
        " experts per layer; expert load is balanced across EP ranks.",
        "Embeddings and lm_head are 16-bit in FP8 / INT checkpoints; the lm_head is read every"
        " forward.",
    ]
    caveat = decode_caveat(topo)
    if caveat:
        items.append(caveat)
    measured = topo.spec.performance
    if measured is not None:
        items.append(
            f"Measured on this deployment's GPUs: decode step x{measured.decode_scale:g},"
            f" prefill pass x{measured.prefill_scale:g} over the model"
            + (f" ({measured.source})." if measured.source else ".")
        )
    spec = topo.speculative
    if spec is not None:
        source = (
            "the spec's speculative.acceptance_length"
            if spec.acceptance_length is not None
            else f"per-position acceptance {_rates(k)} (vLLM #25993, SGLang #14457)"
        )
        items.append(
            f"MTP: {tokens:.2f} tokens per step from {source}; a step is one verify forward over"
            f" the drafted tokens plus {spec.num_steps} draft forward(s) of the one-layer MTP"
            " model."
        )
    return tuple(items)


def decode_caveat(topo: Topology) -> str:
    """Where held-out published runs say the estimate is optimistic beyond 10% for this
    architecture ("" where no such run exists): GLM-5's sparse attention (DSA)."""
    if not topo.arch.sparse_attention or topo.spec.performance is not None:
        return ""  # a GQA model, or corrected by the operator's own measurement
    return (
        "Not validated for sparse attention (DSA, GLM-5): on published GLM-5-FP8 runs on"
        " 8 x H200 the engines were slower than this estimate, SGLang's EAGLE decode step"
        " 1.5x (1 client) to 2.9x (~46 running), vLLM 0.18's prefill 3x (its decode step"
        " within 12%); treat the throughput as an upper bound"
        " (docs/guides/performance-model.md)."
    )


def _rates(k: PerfConstants) -> str:
    return ", ".join(f"{a:g}" for a in k.mtp_position_acceptance[:4])
