"""Bytes a quantised checkpoint stores per matrix edge: per input row or per output column.

Most scale bytes grow with a matrix's values (`QuantScheme.scale_bytes_per_value`), but two
grow with one edge of it:
- GPTQ's `g_idx`, one int32 per input row of every quantised matrix (AutoGPTQ / GPTQModel
  exports; vLLM gptq.py `create_weights`: `g_idx` [input_size_per_partition] int32);
- a per-channel scheme (GPTQ `group_size: -1`): one 16-bit scale and one packed zero point
  per output column (`scales` [1, out], `qzeros` [1, out / pack]).

The matrices are the engines' fused ones, which ChatGLM checkpoints also store fused
(`query_key_value`, `dense_h_to_4h`): QKV, output, gate-up and down. A rank holds the
column-parallel matrices' full input and the row-parallel ones' share; routed experts are
counted whole on 1 / `moe_group` of them (expert parallel), which is exact for the
checkpoint (every degree 1) and within the edge bytes' own ~0.2% elsewhere.
"""

from __future__ import annotations

from controlplane.catalog import Architecture, AttentionKind


def _attention_edges(arch: Architecture, tp: int) -> tuple[float, float]:
    """(input rows, output columns) of one layer's attention matrices on one rank."""
    h = arch.hidden_size
    if arch.attention is AttentionKind.MLA:
        heads = arch.num_attention_heads / tp
        q_head = arch.qk_nope_head_dim + arch.qk_rope_head_dim
        rows = h + arch.kv_lora_rank + heads * arch.v_head_dim  # kv_a, kv_b, o
        cols = (
            arch.kv_lora_rank
            + arch.qk_rope_head_dim
            + heads * (arch.qk_nope_head_dim + arch.v_head_dim)
        )
        cols += h + heads * q_head
        if arch.q_lora_rank:  # q_a (replicated) then q_b
            rows += h + arch.q_lora_rank
            cols += arch.q_lora_rank
        else:
            rows += h
        return rows, cols
    q_width = arch.num_attention_heads * arch.head_dim / tp
    kv_width = max(1.0, arch.num_kv_heads / tp) * arch.head_dim
    return h + q_width, (q_width + 2 * kv_width) + h


def _mlp_edges(arch: Architecture, inter: float) -> tuple[float, float]:
    """(input rows, output columns) of one MLP holding `inter` intermediate columns."""
    up = (arch.mlp_matrices - 1) * inter  # gate and up fused, or up alone
    return arch.hidden_size + inter, up + arch.hidden_size


def layer_edges(
    arch: Architecture, moe: bool, tp: int, dense_tp: int, moe_group: int
) -> tuple[float, float]:
    """(input rows, output columns) of one decoder layer's quantised matrices on one rank."""
    rows, cols = _attention_edges(arch, tp)
    if not moe:
        mlp = _mlp_edges(arch, arch.intermediate_size / dense_tp)
        return rows + mlp[0], cols + mlp[1]
    shared = _mlp_edges(arch, arch.moe_intermediate_size / dense_tp)
    expert = _mlp_edges(arch, arch.moe_intermediate_size)
    routed = arch.num_routed_experts / moe_group
    rows += arch.num_shared_experts * shared[0] + routed * expert[0]
    cols += arch.num_shared_experts * shared[1] + routed * expert[1]
    return rows, cols


def mtp_extra_edges(arch: Architecture, tp: int) -> tuple[float, float]:
    """(input rows, output columns) of an MTP layer's `eh_proj` (2h -> h, column-parallel)."""
    return 2 * arch.hidden_size, arch.hidden_size / tp
