"""Preflight: known GLM-4.5 failures caught before any GPU is touched.

Each check returns `Finding`s with a severity (error: the engine will refuse or crash;
warning: it runs, but not as the model card describes) and the fix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

from controlplane.capacity.engine_rules import engine_budget, memory_rule
from controlplane.capacity.host import is_glm45_family
from controlplane.capacity.layout import Layout, layout_of
from controlplane.capacity.memory import replica_memory
from controlplane.catalog import BYTES_PER_VALUE, FP8_BLOCK, GIB, Precision
from controlplane.spec import Topology
from controlplane.spec.layout import moe_split_fails_fp8

# Marlin FP8 kernels (vLLM / SGLang on GPUs without FP8 tensor cores) tile the output
# dimension by 64: "size_n = 5472 is not divisible by tile_n_size = 64" (Air-FP8 at TP 4,
# reference/model-configs.md).
MARLIN_TILE_N = 64
# The model card's requirement tables hold for batch size 8 with MTP 3 / 1 / 4.
CARD_MAX_BATCH = 8


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def preflight(topo: Topology, layout: Layout | None = None) -> list[Finding]:
    """Every known failure and departure from the model card for `topo` (its `layout` may be
    given when it differs from the catalog's, e.g. a device with other memory)."""
    layout = layout or layout_of(topo)
    return layout_findings(layout) + _card_conditions(topo, layout)


def layout_findings(layout: Layout) -> list[Finding]:
    """The findings that depend on the layout alone (what the search ranks layouts by)."""
    findings: list[Finding] = []
    checks = (
        _heads,
        _fp8_moe_blocks,
        _fp8_dense_tiles,
        _kv_replicated,
        _mem_fraction,
        _pipeline_speculative,
    )
    for check in checks:
        findings.extend(check(layout))
    return findings


def flag_rank(findings: list[Finding] | tuple[Finding, ...]) -> int:
    """0: clean; 1: warnings only (runs, but not as the card describes); 2: an error."""
    if any(f.severity is Severity.ERROR for f in findings):
        return 2
    return 1 if findings else 0


def _heads(layout: Layout) -> list[Finding]:
    heads = layout.arch.num_attention_heads
    if heads % layout.tp == 0:
        return []
    ok = [d for d in range(1, min(heads, 64) + 1) if heads % d == 0]
    return [
        Finding(
            Severity.ERROR,
            "heads-not-divisible",
            f"tensor parallel {layout.tp} does not divide the {heads} attention heads.",
            f"use a tensor degree among {ok}; make up the GPUs with pipeline or data parallel.",
        )
    ]


def _fp8_moe_blocks(layout: Layout) -> list[Finding]:
    arch = layout.arch
    moe_tp = layout.moe_group // max(1, layout.ep)
    if not moe_split_fails_fp8(arch, layout.checkpoint_format, moe_tp):
        return []
    per_rank = arch.moe_intermediate_size / moe_tp
    return [
        Finding(
            Severity.ERROR,
            "fp8-moe-block",
            f"block-FP8 experts split by tensor parallel {moe_tp}: moe_intermediate_size"
            f" {arch.moe_intermediate_size} / {moe_tp} = {per_rank:g} is not a multiple of the"
            f" {FP8_BLOCK}-wide FP8 block, so SGLang and vLLM refuse to load the experts.",
            f"set `parallelism.expert: {layout.moe_group}` (whole experts per GPU), or a tensor"
            " degree that keeps the split a multiple of 128.",
        )
    ]


def _fp8_dense_tiles(layout: Layout) -> list[Finding]:
    arch = layout.arch
    if layout.checkpoint_format is not Precision.FP8 or arch.num_dense_layers == 0:
        return []
    merged = 2 * arch.intermediate_size / layout.dense_tp  # gate_up per rank
    if merged % MARLIN_TILE_N == 0:
        return []
    native = layout.gpu.supports_fp8
    return [
        Finding(
            Severity.WARNING if native else Severity.ERROR,
            "fp8-dense-tile",
            f"dense MLP intermediate {arch.intermediate_size} / TP {layout.dense_tp} ="
            f" {arch.intermediate_size / layout.dense_tp:g} per rank (gate_up {merged:g}) is not"
            f' a multiple of {MARLIN_TILE_N}: the Marlin FP8 path fails with "size_n ='
            f' {merged:g} is not divisible by tile_n_size = {MARLIN_TILE_N}"'
            + (" (it runs on FP8-native GPUs through block-FP8 kernels)." if native else "."),
            "use a tensor degree whose split is a multiple of 64 (Air: TP 1 or 2), or FP8-native"
            " GPUs (H100, H200, B200).",
        )
    ]


def _kv_replicated(layout: Layout) -> list[Finding]:
    arch = layout.arch
    if arch.attention.value != "gqa" or layout.tp <= arch.num_kv_heads:
        return []
    copies = layout.tp // arch.num_kv_heads
    per_token_ideal = 2 * arch.num_kv_heads * arch.head_dim / layout.tp
    per_token = 2 * arch.head_dim  # one head per rank
    extra = (per_token - per_token_ideal) * arch.num_layers * BYTES_PER_VALUE[layout.kv_dtype]
    cost = extra * layout.required_tokens / GIB
    return [
        Finding(
            Severity.WARNING,
            "kv-heads-replicated",
            f"tensor parallel {layout.tp} exceeds the {arch.num_kv_heads} KV heads: each KV head"
            f" is stored {copies}x, costing {extra / 1024:.1f} KiB more per token per GPU"
            f" ({cost:.1f} GiB per GPU at {layout.required_tokens} tokens).",
            f"keep tensor parallel at {arch.num_kv_heads} and use pipeline stages or DP attention"
            " for the other GPUs.",
        )
    ]


def _mem_fraction(layout: Layout) -> list[Finding]:
    if layout.mem_fraction is None:
        return []
    given = replica_memory(layout)
    if given.fits:
        return []
    auto = replica_memory(layout.with_(mem_fraction=None))
    fraction = engine_budget(auto.layout).mem_fraction
    budget = given.budget
    short = -given.min_headroom_bytes / GIB
    # Only GLM-4.5's card gives engine commands (with --mem-fraction-static 0.7).
    card = " (the model card's commands pass 0.7)" if is_glm45_family(layout) else ""
    fix = (
        f"remove `engine.mem_fraction` (the engine's own rule gives {fraction:.3f}, which fits)."
        if auto.fits
        else "remove `engine.mem_fraction` and use a layout that fits (`glmctl capacity --search`)."
    )
    return [
        Finding(
            Severity.ERROR,
            "mem-fraction-too-small",
            f"engine.mem_fraction {layout.mem_fraction} ({budget.flag}) leaves"
            f" {budget.static_bytes / GIB:.1f} GiB per GPU for weights and KV cache:"
            f" {short:.1f} GiB short{card}.",
            fix,
        )
    ]


def _card_conditions(topo: Topology, layout: Layout) -> list[Finding]:
    """The conditions behind the model card's requirement tables (GLM-4.5 family only)."""
    if topo.arch.model_type != "glm4_moe":
        return []
    checks = (
        (
            layout.max_num_seqs > CARD_MAX_BATCH and layout.speculative,
            "card-batch",
            f"max_num_seqs {layout.max_num_seqs} with MTP: the model card's GPU counts hold for"
            f" batch {CARD_MAX_BATCH}; MTP's speed-up shrinks as batches grow.",
            f"set `max_num_seqs: {CARD_MAX_BATCH}`, or size with `glmctl capacity`.",
        ),
        (
            not layout.speculative and topo.model.has_mtp,
            "card-mtp",
            "speculative decoding is off: the model card's tables assume the MTP layer as draft"
            " (3 / 1 / 4), which also takes its weights and KV.",
            "leave `speculative` unset to use MTP as the card does.",
        ),
        (
            layout.precision is Precision.FP8 and layout.kv_dtype is not Precision.FP8,
            "card-fp8-kv",
            f"FP8 weights with a {layout.kv_dtype.value} KV cache: the card uses FP8 KV with FP8"
            " weights (half the KV memory).",
            "set `kv_cache_dtype: fp8` (or leave it `auto`).",
        ),
        (
            layout.cpu_offload_gb > 0,
            "card-cpu-offload",
            f"cpu_offload_gb {layout.cpu_offload_gb:g}: the card's tables assume no CPU offload;"
            " weights stream over PCIe every forward pass.",
            "use more GPUs or FP8 instead (`glmctl capacity --search`).",
        ),
    )
    return [Finding(Severity.WARNING, code, msg, fix) for hit, code, msg, fix in checks if hit]


def _pipeline_speculative(layout: Layout) -> list[Finding]:
    if layout.pp == 1 or not layout.speculative or not memory_rule(layout).pp_speculative_opt_in:
        return []
    return [
        Finding(
            Severity.WARNING,
            "pp-speculative",
            f"pipeline parallel {layout.pp} with EAGLE / MTP: SGLang refused this combination"
            " until it landed behind SGLANG_ENABLE_PP_SPEC=1 (sgl-project/sglang#30775), and"
            " each verify step then pays a full pipeline round trip.",
            "prefer tensor parallel with DP attention for the extra GPUs, or set"
            " SGLANG_ENABLE_PP_SPEC=1 in `engine.env` on an SGLang that has it.",
        )
    ]
