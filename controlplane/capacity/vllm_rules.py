"""vLLM's KV budget per GPU, as `determine_available_memory` computes it (V1 engine).

    requested  = torch total x gpu_memory_utilization
    KV bytes   = requested - weights - activation peak - non-torch memory
                 - CUDA-graph estimate (subtracted by default since vLLM 0.21)
    KV tokens  = whole blocks of `block_size` tokens; every worker gets the smallest count.

The activation peak is the profile run's: the larger of the forward pass over
max_num_batched_tokens and the dummy sampler over max_num_seqs rows of float32 logits (not
divided by TP: every rank samples the full vocabulary). Constants and their sources are in
`constants.py`. Versions: glmctl targets vLLM 0.32 (`engines/vllm.py`); a layout may name
another version (`Layout.engine_version`), which changes which terms apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.capacity import constants as c
from controlplane.capacity.layout import Layout
from controlplane.catalog import Architecture, AttentionKind

TARGET_VERSION = (0, 32)  # controlplane/engines/vllm.py TARGET_VERSION "0.32.0"


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
    """Peak of the dummy sampler run: vocab-wide float32 rows, several copies per row."""
    if version >= c.VLLM_V1_SAMPLER_SINCE:
        copies = c.VLLM_SAMPLER_COPIES_V1
    else:
        copies = c.VLLM_SAMPLER_COPIES_PRE_0_11
    return max_num_seqs * arch.vocab_size * 4 * copies


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
