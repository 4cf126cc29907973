"""vLLM's KV budget per GPU, as `determine_available_memory` computes it (V1 engine).

    requested  = torch total x gpu_memory_utilization
    KV bytes   = requested - weights - activation peak - non-torch memory
                 - CUDA-graph estimate (subtracted by default since vLLM 0.21)
    KV tokens  = whole blocks of `block_size` tokens; every worker gets the smallest count.

The activation peak is the profile run's: the larger of the forward pass over
max_num_batched_tokens and the dummy sampler over max_num_seqs rows of float32 logits (not
divided by TP: every rank samples the full vocabulary). How many vocab-wide float32 copies the
sampler holds at its peak depends on the version: `SAMPLER_RULES` lists each range with the
log it was read from, or says that no log of that range was found and which figure is carried.
Constants are in `constants.py`. Versions: glmctl targets vLLM 0.32 (`engines/vllm.py`); a
layout may name another version (`Layout.engine_version`), which picks the terms that apply.
The KV calibration against public start-up logs (`tests/data/capacity/kv_cases.yaml`,
`ops/calibration/kv_table.py`) marks which log set which constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.capacity import constants as c
from controlplane.capacity.layout import Layout
from controlplane.catalog import Architecture, AttentionKind

TARGET_VERSION = (0, 32)  # controlplane/engines/vllm.py TARGET_VERSION "0.32.0"


@dataclass(frozen=True)
class SamplerRule:
    """Vocab-wide float32 copies per sampled row at the profile run's peak, from `since` on."""

    since: tuple[int, int]
    copies: float
    constant: str  # its name in constants.py
    evidence: str  # the log (or the absence of one) behind the figure
    measured: bool  # True: read from a log of a version in this range


SAMPLER_RULES: tuple[SamplerRule, ...] = (
    SamplerRule(
        (0, 0),
        c.VLLM_SAMPLER_COPIES_PRE_0_11,
        "VLLM_SAMPLER_COPIES_PRE_0_11",
        "vLLM 0.10.1.1 on A100: 0.50 GiB left for activation + non-torch memory at 256"
        " sequences (dennislee22/vLLM-benchmarking log/vllm-7B-1gpuA10080GB-0.5GRAM.log)",
        True,
    ),
    SamplerRule(
        c.VLLM_V1_SAMPLER_SINCE,
        c.VLLM_SAMPLER_COPIES_V1,
        "VLLM_SAMPLER_COPIES_V1",
        "vLLM 0.11 on H100: peaks of 4.76 GiB (vocab 128256), 5.56-5.64 GiB (151936) and"
        " 7.38 GiB (201088) at 1024 sequences, flat in TP and model width"
        " (llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md)",
        True,
    ),
    SamplerRule(
        (0, 12),
        c.VLLM_SAMPLER_COPIES_V1,
        "VLLM_SAMPLER_COPIES_V1",
        "no public start-up log of 0.12-0.32 with the profiled peak and a full launch command"
        " was found (GitHub issues searched for 'torch peak memory increase' and 'Available KV"
        " cache memory' beside a version banner): the 0.11 figure is carried forward."
        " vllm-project/vllm#48641 (merged 2026-07-14, after 0.23) stopped upcasting logits to"
        " float32 in apply_sampling_params, but its own H100 measurement shows the same profiled"
        " peak before and after (3.04 GiB), so no step is taken at that version",
        False,
    ),
)


def sampler_rule(version: tuple[int, int]) -> SamplerRule:
    """The rule that applies to `version` (the last one whose range starts at or before it)."""
    applicable = [rule for rule in SAMPLER_RULES if rule.since <= version]
    return applicable[-1] if applicable else SAMPLER_RULES[0]


@dataclass(frozen=True)
class VllmInputs:
    """What vLLM's budget depends on besides the model's weights."""

    arch: Architecture
    tp: int
    world: int  # tp x pp x dp ranks of the replica
    max_num_seqs: int
    batched_tokens: int
    version: tuple[int, int]
    multi_node: bool = False  # the replica's ranks span nodes

    @classmethod
    def of(cls, layout: Layout, tp: int) -> VllmInputs:
        return cls(
            layout.arch,
            tp,
            tp * layout.pp * layout.dp,
            layout.max_num_seqs,
            layout.chunked_prefill or c.VLLM_DEFAULT_MAX_NUM_BATCHED_TOKENS,
            layout.engine_version or TARGET_VERSION,
            layout.nodes > 1,
        )


def forward_activation_bytes(arch: Architecture, tp: int, tokens: int) -> float:
    """Peak activation of the profile forward pass over `tokens` batched tokens on one rank."""
    qkv = (arch.num_attention_heads / tp + 2 * max(1, arch.num_kv_heads // tp)) * arch.head_dim
    dense = 2 * arch.intermediate_size / tp if arch.num_dense_layers else 0
    moe = 0.0
    if arch.is_moe:
        moe = arch.experts_per_token * (2 * arch.moe_intermediate_size / tp + arch.hidden_size)
    per_token = c.VLLM_FORWARD_RESIDUAL_WIDTHS * arch.hidden_size + qkv + max(dense, moe)
    return tokens * per_token * 2


def sampler_activation_bytes(
    arch: Architecture, max_num_seqs: int, version: tuple[int, int]
) -> float:
    """Peak of the dummy sampler run: vocab-wide float32 rows, `sampler_rule` copies per row."""
    return max_num_seqs * arch.vocab_size * 4 * sampler_rule(version).copies


def activation_peak_bytes(inputs: VllmInputs) -> float:
    forward = forward_activation_bytes(inputs.arch, inputs.tp, inputs.batched_tokens)
    sampler = sampler_activation_bytes(inputs.arch, inputs.max_num_seqs, inputs.version)
    return max(forward, sampler)


def vllm_reserved(inputs: VllmInputs) -> dict[str, float]:
    """The named terms vLLM keeps out of the requested memory besides weights, in bytes."""
    if inputs.multi_node:
        non_torch = c.VLLM_NON_TORCH_MULTINODE_BYTES
    elif inputs.world > 1:
        non_torch = c.VLLM_NON_TORCH_TP_BYTES
    else:
        non_torch = c.VLLM_NON_TORCH_TP1_BYTES
    terms = {
        "profiled_activation_peak": activation_peak_bytes(inputs),
        "non_torch_memory": float(non_torch),
    }
    if inputs.version >= c.VLLM_CUDAGRAPH_SUBTRACTED_SINCE:
        terms["cuda_graph_estimate"] = float(c.VLLM_CUDAGRAPH_ESTIMATE_BYTES)
    return terms


def vllm_page_size(layout: Layout) -> int:
    """Tokens per KV block: the layout's --block-size, else the attention backend's default."""
    if layout.page_size:
        return layout.page_size
    mla = layout.arch.attention is AttentionKind.MLA
    return c.VLLM_MLA_BLOCK_SIZE if mla else c.VLLM_DEFAULT_BLOCK_SIZE


def vllm_static_bytes(layout: Layout, tp: int, pp: int, dp: int) -> float:
    """Per-GPU bytes vLLM gives weights + KV for `layout` split as tp x pp x dp (the search)."""
    fraction = layout.mem_fraction or c.VLLM_DEFAULT_GPU_MEMORY_UTILIZATION
    world = tp * pp * dp
    inputs = VllmInputs(
        layout.arch,
        tp,
        world,
        layout.max_num_seqs,
        layout.chunked_prefill or c.VLLM_DEFAULT_MAX_NUM_BATCHED_TOKENS,
        layout.engine_version or TARGET_VERSION,
        world > layout.gpus_per_node,
    )
    return layout.gpu.torch_total_bytes * fraction - sum(vllm_reserved(inputs).values())
