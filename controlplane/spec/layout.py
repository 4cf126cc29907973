"""Resolve and check how one replica is laid out: nodes, tensor / pipeline / data, experts.

Pure functions over a spec copy being resolved (`resolve` owns the copy); each appends
`Problem`s instead of raising, so a user sees every layout mistake at once.
"""

from __future__ import annotations

import math

from controlplane.catalog import FP8_BLOCK, Architecture, AttentionKind, ModelEntry, Precision
from controlplane.spec.messages import Problem
from controlplane.spec.models import GpuSpec, ParallelismSpec, TopologySpec


def moe_split_fails_fp8(arch: Architecture, weight_format: Precision, tp: int) -> bool:
    """Block-FP8 experts split by TP need moe_intermediate / tp to be a multiple of the block
    (128 in the catalog's FP8 checkpoints; a checkpoint's own `weight_block_size` otherwise).
    Per-tensor or per-channel FP8 has no block to cut through.

    (shared/reference/model-configs.md: 1536 / 8 = 192 fails in SGLang and vLLM alike.)
    """
    if weight_format is not Precision.FP8 or not arch.is_moe:
        return False
    blocks = (FP8_BLOCK, FP8_BLOCK) if arch.quant is None else arch.quant.block
    if blocks is None:
        return False
    per_rank, remainder = divmod(arch.moe_intermediate_size, tp)
    return remainder != 0 or any(per_rank % size for size in blocks)


def resolve_layout(
    s: TopologySpec, entry: ModelEntry, problems: list[Problem], warnings: list[str]
) -> None:
    """Fill nodes, tensor and expert degrees of `s` (in place) and check them."""
    arch = entry.arch
    tensor_given = s.parallelism.tensor is not None
    _place_nodes(s.gpus, problems)
    _split_ranks(s.gpus, s.parallelism, problems)
    tp = s.parallelism.tensor
    assert tp is not None
    if arch.num_attention_heads % tp:
        problems.append(_heads_problem(arch.num_attention_heads, tp, s.gpus.count, tensor_given))
    if s.parallelism.pipeline > arch.num_layers:
        problems.append(
            Problem(
                ("parallelism", "pipeline"),
                f"pipeline {s.parallelism.pipeline} exceeds the model's {arch.num_layers} layers.",
                f"use at most {arch.num_layers} pipeline stages.",
            )
        )
    _place_experts(s.parallelism, entry, problems)
    if tp > arch.num_kv_heads and arch.attention is AttentionKind.GQA:
        warnings.append(
            f"tensor parallel {tp} exceeds the {arch.num_kv_heads} KV heads: each KV head is"
            f" replicated {tp // arch.num_kv_heads}x, so KV cache per token costs that much more"
            " per GPU (see `glmctl capacity`)."
        )


def _place_nodes(g: GpuSpec, problems: list[Problem]) -> None:
    if g.nodes is None:
        g.nodes = math.ceil(g.count / g.per_node)
    if g.count % g.nodes or g.count // g.nodes > g.per_node:
        need = math.ceil(g.count / g.per_node)
        problems.append(
            Problem(
                ("gpus", "nodes"),
                f"{g.nodes} node(s) of {g.per_node} GPUs cannot hold a replica of {g.count} GPUs"
                " split evenly across its nodes.",
                f"set `gpus.nodes: {need}` (or leave it out), or change `gpus.count`.",
            )
        )


def _split_ranks(g: GpuSpec, par: ParallelismSpec, problems: list[Problem]) -> None:
    if par.tensor is None:
        par.tensor = max(1, g.count // (par.pipeline * par.data))
    tp, pp, dp = par.tensor, par.pipeline, par.data
    if tp * pp * dp != g.count:
        problems.append(
            Problem(
                ("parallelism",),
                f"tensor x pipeline x data = {tp} x {pp} x {dp} = {tp * pp * dp}, but one replica"
                f" has gpus.count = {g.count} GPUs.",
                f"make the product {g.count}: for example `tensor: {g.count // (pp * dp) or 1}`"
                f" with pipeline {pp} and data {dp}, or set `gpus.count: {tp * pp * dp}`.",
            )
        )


def _heads_problem(heads: int, tp: int, count: int, tensor_given: bool) -> Problem:
    ok = [d for d in range(1, heads + 1) if heads % d == 0 and d <= max(count, 8)]
    if tensor_given:
        return Problem(
            ("parallelism", "tensor"),
            f"tensor parallel {tp} does not divide the model's {heads} attention heads.",
            f"use a tensor degree among {ok} and make up the GPUs with pipeline or data.",
        )
    return Problem(
        ("gpus", "count"),
        f"tensor parallel defaults to all {count} GPUs of the replica, and {tp} does not"
        f" divide the model's {heads} attention heads.",
        f"set `gpus.count` to one of {ok}, or set `parallelism.tensor` to one of them and"
        " make up the GPUs with `pipeline` or `data`.",
    )


def _place_experts(par: ParallelismSpec, entry: ModelEntry, problems: list[Problem]) -> None:
    arch = entry.arch
    assert par.tensor is not None
    moe_span = par.tensor * par.data
    if par.expert is None:
        fails = moe_split_fails_fp8(arch, entry.weight_format, par.tensor)
        par.expert = moe_span if fails else 1
    ep = par.expert
    if ep > 1 and not arch.is_moe:
        problems.append(
            Problem(
                ("parallelism", "expert"),
                f"{entry.display_name} is dense; expert parallelism needs MoE.",
                "remove `parallelism.expert` (or set it to 1).",
            )
        )
    elif arch.is_moe and (arch.num_routed_experts % ep or moe_span % ep):
        experts = arch.num_routed_experts
        fits = [d for d in range(1, moe_span + 1) if moe_span % d == 0 and experts % d == 0]
        problems.append(
            Problem(
                ("parallelism", "expert"),
                f"expert parallel {ep} must divide both the {experts} routed experts and the"
                f" {moe_span} GPUs the MoE layers span (tensor x data).",
                f"use one of {fits}.",
            )
        )
