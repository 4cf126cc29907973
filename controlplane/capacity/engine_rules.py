"""How each engine decides how much GPU memory weights + KV cache may use (per GPU).

SGLang 0.5.23 (`python/sglang/srt/server_args.py` `_handle_gpu_memory_settings`;
`model_executor/model_runner.py` `init_torch_distributed`, and
`model_runner_kv_cache_mixin.py` `profile_max_num_token`):
    reserved MiB = 512 + max(chunked_prefill, 2048) x 1.5 + cuda_graph_max_bs x 2
                   + tp x pp / 8 x 1024 (+ DP-attention terms);
    at least 10240 MiB on GPUs over 60 GiB; + 2048 MiB for EAGLE / MTP;
    mem_fraction_static = round((gpu MiB - reserved) / gpu MiB, 3)
    pre-load free = torch total - CUDA context - torch.distributed buffers (by TP, NVLink)
    KV pool bytes = free after loading - pre-load free x (1 - mem_fraction_static)
                  = pre-load free x mem_fraction_static - weights;
    tokens = pool // cell (page_size 1), the minimum over pipeline stages.
vLLM: see `vllm_rules` (torch total x utilisation - weights - activation peak - non-torch
memory - CUDA-graph estimate, rounded down to whole blocks). TensorRT-LLM: `trtllm_rules`.

Each rule is one `MemoryRule` (`SGLANG_MEMORY`, `VLLM_MEMORY`, `TRTLLM_MEMORY`); the engine's
profile (controlplane/engines/) names it, and capacity code asks `memory_rule(layout)`
instead of branching on the engine (capacity sits below engines/ and cannot import them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from controlplane.capacity import constants as c
from controlplane.capacity import trtllm_rules
from controlplane.capacity.attention_cache import SGLANG_DSA_PAGE_SIZE
from controlplane.capacity.layout import Layout
from controlplane.capacity.vision import vision_extra_bytes
from controlplane.capacity.vllm_rules import (
    VllmInputs,
    vllm_page_size,
    vllm_reserved,
    vllm_static_bytes,
)
from controlplane.catalog import MIB, GpuType
from controlplane.spec.models import EngineKind


@dataclass(frozen=True)
class EngineBudget:
    """Per-GPU memory the engine gives weights + KV cache, and what it keeps back."""

    engine: EngineKind  # the engine whose rule applies (sim follows its flavour)
    mem_fraction: float  # SGLang --mem-fraction-static / vLLM --gpu-memory-utilization
    auto: bool  # True: the engine's own automatic value (the spec gave none)
    static_bytes: float  # weights + KV pool may use this much of one GPU
    reserved: dict[str, float] = field(default_factory=dict)  # named terms kept back, bytes
    flag: str = ""  # the command-line flag that passes mem_fraction
    page_tokens: int = 1  # the pool is whole pages of this many tokens (vLLM blocks)

    @property
    def reserved_bytes(self) -> float:
        return sum(self.reserved.values())


def sglang_tp_size(layout: Layout) -> int:
    """SGLang's --tp-size: all GPUs of a stage under DP attention, else the TP degree."""
    return layout.moe_group


def sglang_defaults(gpu_mib: float, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, cuda_graph_max_bs) SGLang picks for a GPU of gpu_mib MiB.

    server_args.py GPU tiers: < 35 GiB: 2048 / (24 below TP 4, else 80); < 60 GiB: 4096 /
    (32, else 160); < 160 GiB (H100, H200): 8192 / (256, else 512); larger (B200): 16384 / 512.
    """
    small_tp = tp < c.SGLANG_CUDA_GRAPH_TP_THRESHOLD
    for limit_gib, chunked, graph_small, graph_large in c.SGLANG_GPU_TIERS:
        if gpu_mib < limit_gib * 1024:
            return chunked, graph_small if small_tp else graph_large
    return c.SGLANG_LARGEST_TIER


def is_nvlink(gpu: GpuType) -> bool:
    return gpu.interconnect_bandwidth >= c.NVLINK_MIN_BANDWIDTH


@dataclass(frozen=True)
class SglangInputs:
    """What SGLang's memory rule reads: the GPU, the parallel sizes, a few flags."""

    gpu_bytes: int  # as nvidia-smi reports it (the automatic fraction's base)
    tp_size: int
    pp: int
    dp: int
    dp_attention: bool
    speculative: bool
    chunked_prefill: int | None
    mem_fraction: float | None
    torch_total_bytes: int = 0  # as torch reports it; 0: gpu_bytes
    nvlink: bool = True

    @classmethod
    def of(cls, layout: Layout) -> SglangInputs:
        return cls(
            layout.gpu.memory_bytes,
            sglang_tp_size(layout),
            layout.pp,
            layout.dp,
            layout.dp_attention,
            layout.speculative,
            layout.chunked_prefill,
            layout.mem_fraction,
            layout.gpu.torch_total_bytes,
            is_nvlink(layout.gpu),
        )


def sglang_reserved_mib(inputs: SglangInputs) -> dict[str, float]:
    """SGLang's reserved-memory terms in MiB (the automatic mem_fraction_static rule)."""
    chunked, graph_bs = sglang_defaults(inputs.gpu_bytes / MIB, inputs.tp_size)
    chunked = inputs.chunked_prefill or chunked
    terms: dict[str, float] = {
        "metadata": c.SGLANG_RESERVED_BASE_MIB,
        "chunked_prefill_activations": max(chunked, c.SGLANG_CHUNKED_PREFILL_FLOOR)
        * c.SGLANG_CHUNKED_PREFILL_FACTOR,
        "cuda_graphs": graph_bs * c.SGLANG_CUDA_GRAPH_MIB_PER_BS,
        "parallel_buffers": inputs.tp_size * inputs.pp / 8 * c.SGLANG_PARALLEL_MIB,
    }
    if inputs.dp_attention:
        terms["dp_attention"] = graph_bs * inputs.dp * 3 + (
            graph_bs * inputs.dp * 1.5 if graph_bs > 300 else 0
        )
    subtotal = sum(terms.values())
    if inputs.gpu_bytes > c.SGLANG_LARGE_GPU_BYTES and subtotal < (
        c.SGLANG_LARGE_GPU_MIN_RESERVED_MIB
    ):
        terms["large_gpu_floor"] = c.SGLANG_LARGE_GPU_MIN_RESERVED_MIB - subtotal
    if inputs.speculative:
        terms["eagle_draft"] = c.SGLANG_SPECULATIVE_EXTRA_MIB
    return terms


def sglang_pre_load_terms(inputs: SglangInputs) -> dict[str, float]:
    """Bytes of torch's total that are gone before SGLang measures its pre-load free memory."""
    terms = {"cuda_context": float(c.SGLANG_CONTEXT_BYTES)}
    if inputs.tp_size * inputs.pp > 1:
        dist = c.SGLANG_DIST_NVLINK_BYTES if inputs.nvlink else c.SGLANG_DIST_PCIE_BYTES
        terms["torch_distributed"] = float(dist)
    return terms


def sglang_pre_load_free(inputs: SglangInputs) -> float:
    """The free memory SGLang measures before loading (its `total_gpu_memory`)."""
    total = inputs.torch_total_bytes or inputs.gpu_bytes
    return total - sum(sglang_pre_load_terms(inputs).values())


def _auto_fraction(inputs: SglangInputs) -> float:
    gpu_mib = inputs.gpu_bytes / MIB
    return round((gpu_mib - sum(sglang_reserved_mib(inputs).values())) / gpu_mib, 3)


def sglang_static_bytes(inputs: SglangInputs) -> float:
    """`sglang_budget(inputs).static_bytes` without building the breakdown (the search's
    inner loop: the same sums as `sglang_reserved_mib` and `sglang_pre_load_terms`)."""
    fraction = inputs.mem_fraction
    gpu_mib = inputs.gpu_bytes / MIB
    if fraction is None:
        chunked, graph_bs = sglang_defaults(gpu_mib, inputs.tp_size)
        chunked = inputs.chunked_prefill or chunked
        reserved = (
            c.SGLANG_RESERVED_BASE_MIB
            + max(chunked, c.SGLANG_CHUNKED_PREFILL_FLOOR) * c.SGLANG_CHUNKED_PREFILL_FACTOR
            + graph_bs * c.SGLANG_CUDA_GRAPH_MIB_PER_BS
            + inputs.tp_size * inputs.pp / 8 * c.SGLANG_PARALLEL_MIB
        )
        if inputs.dp_attention:
            reserved += graph_bs * inputs.dp * (4.5 if graph_bs > 300 else 3)
        if inputs.gpu_bytes > c.SGLANG_LARGE_GPU_BYTES:
            reserved = max(reserved, c.SGLANG_LARGE_GPU_MIN_RESERVED_MIB)
        if inputs.speculative:
            reserved += c.SGLANG_SPECULATIVE_EXTRA_MIB
        fraction = round((gpu_mib - reserved) / gpu_mib, 3)
    free = inputs.torch_total_bytes or inputs.gpu_bytes
    free -= c.SGLANG_CONTEXT_BYTES
    if inputs.tp_size * inputs.pp > 1:
        free -= c.SGLANG_DIST_NVLINK_BYTES if inputs.nvlink else c.SGLANG_DIST_PCIE_BYTES
    return free * fraction


def sglang_auto_fraction(layout: Layout) -> float:
    """SGLang's automatic --mem-fraction-static for this layout."""
    return _auto_fraction(SglangInputs.of(layout))


@lru_cache(maxsize=16384)
def sglang_budget(inputs: SglangInputs) -> EngineBudget:
    """SGLang's budget (cached: one per GPU type and parallel shape, shared across models)."""
    terms = sglang_reserved_mib(inputs)
    given = inputs.mem_fraction
    fraction = given if given is not None else _auto_fraction(inputs)
    free_at_start = sglang_pre_load_free(inputs)
    static = free_at_start * fraction
    # The rows add up to the GPU as nvidia-smi shows it (what the report prints).
    total = float(inputs.gpu_bytes)
    reserved = {"not_visible_to_torch": total - (inputs.torch_total_bytes or inputs.gpu_bytes)}
    reserved.update(sglang_pre_load_terms(inputs))
    if given is None:
        reserved.update({k: v * MIB for k, v in terms.items()})
        reserved["rounding"] = total - static - sum(reserved.values())
    else:
        reserved["outside_mem_fraction_static"] = free_at_start * (1 - fraction)
    return EngineBudget(
        EngineKind.SGLANG,
        fraction,
        given is None,
        static,
        reserved,
        "--mem-fraction-static",
        c.SGLANG_PAGE_SIZE,
    )


def vllm_budget(layout: Layout) -> EngineBudget:
    """vLLM's budget under `vllm_rules` for the layout's (or glmctl's target) version."""
    inputs = VllmInputs.of(layout, layout.tp)
    given = layout.mem_fraction
    fraction = given if given is not None else c.VLLM_DEFAULT_GPU_MEMORY_UTILIZATION
    total = float(layout.gpu.torch_total_bytes)
    reserved = {
        "not_visible_to_torch": float(layout.gpu.memory_bytes - total),
        "outside_gpu_memory_utilization": total * (1 - fraction),
    }
    reserved.update(vllm_reserved(inputs))
    static = layout.gpu.memory_bytes - sum(reserved.values())
    return EngineBudget(
        EngineKind.VLLM,
        fraction,
        given is None,
        static,
        reserved,
        "--gpu-memory-utilization",
        vllm_page_size(layout),
    )


def trtllm_budget(layout: Layout) -> EngineBudget:
    """TensorRT-LLM's budget: weights + its KV fraction of the memory left after them."""
    fraction, static, reserved = trtllm_rules.trtllm_terms(layout)
    return EngineBudget(
        EngineKind.TRTLLM,
        fraction,
        layout.mem_fraction is None,
        static,
        reserved,
        "--kv_cache_free_gpu_memory_fraction",
        trtllm_rules.TOKENS_PER_BLOCK,
    )


# ----- one MemoryRule per engine ------------------------------------------------------------
SplitStatic = Callable[[Layout, int, int, int, int], float]  # (base, tp, pp, dp, ep) -> bytes


@dataclass(frozen=True)
class MemoryRule:
    """What capacity needs of one engine's memory rule (its profile names the object).

    `budget` is the full breakdown; `split_static` the same static bytes for `base` split
    (tp, pp, dp, ep) with DP attention when dp > 1, without the breakdown (the search's
    inner loop); `pool_page` the tokens the search rounds a KV requirement up to.
    """

    engine: EngineKind
    budget: Callable[[Layout], EngineBudget]
    split_static: SplitStatic
    pool_page: Callable[[Layout], int]
    # The static budget depends on the GPU and the split only, not the model: the search
    # may cache it per GPU type and shape.
    static_by_gpu: bool = False
    # glmctl starts one-node, PP-free replicas only (TensorRT-LLM: trtllm_matrix.py).
    one_node_no_pp: bool = False
    # Pipeline parallel with EAGLE / MTP needs an opt-in (SGLang: preflight warns).
    pp_speculative_opt_in: bool = False
    # KV page tokens with DeepSeek sparse attention (GLM-5): SGLang's DSA backend needs
    # 64-token pages (capacity/attention_cache.py); 1 leaves the engine's own page.
    sparse_attention_page: int = 1
    # vLLM's profile run also runs the vision encoder over the largest images
    # (capacity/vision.py); SGLang's static fraction has no such term.
    profiles_vision_encoder: bool = False


def _sglang_split_static(base: Layout, tp: int, pp: int, dp: int, ep: int) -> float:
    inputs = SglangInputs(
        base.gpu.memory_bytes,
        tp * dp,
        pp,
        dp,
        dp > 1,
        base.speculative,
        base.chunked_prefill,
        base.mem_fraction,
        base.gpu.torch_total_bytes,
        is_nvlink(base.gpu),
    )
    return sglang_static_bytes(inputs)


def _vllm_split_static(base: Layout, tp: int, pp: int, dp: int, ep: int) -> float:
    vision = vision_extra_bytes(base.with_(tp=tp)) if base.arch.vision else 0.0
    return vllm_static_bytes(base, tp, pp, dp) - vision


def _trtllm_split_static(base: Layout, tp: int, pp: int, dp: int, ep: int) -> float:
    split = base.with_(tp=tp, pp=pp, dp=dp, ep=ep, dp_attention=dp > 1)
    return trtllm_rules.trtllm_terms(split)[1]


SGLANG_MEMORY = MemoryRule(
    EngineKind.SGLANG,
    lambda layout: sglang_budget(SglangInputs.of(layout)),
    _sglang_split_static,
    lambda _layout: 1,
    static_by_gpu=True,
    pp_speculative_opt_in=True,
    sparse_attention_page=SGLANG_DSA_PAGE_SIZE,
)
VLLM_MEMORY = MemoryRule(
    EngineKind.VLLM, vllm_budget, _vllm_split_static, vllm_page_size, profiles_vision_encoder=True
)
TRTLLM_MEMORY = MemoryRule(
    EngineKind.TRTLLM, trtllm_budget, _trtllm_split_static, lambda _layout: 1, one_node_no_pp=True
)
# SGLang's rule first: it also sizes a simulated replica that names no flavour.
MEMORY_RULES = (SGLANG_MEMORY, VLLM_MEMORY, TRTLLM_MEMORY)
_BY_ENGINE = {rule.engine: rule for rule in MEMORY_RULES}


def memory_rule(layout: Layout) -> MemoryRule:
    """The rule sizing `layout`: its engine's, else (the simulator has none) that of the
    engine it mimics, else SGLang's."""
    for engine in (layout.engine, layout.flavor):
        if engine in _BY_ENGINE:
            return _BY_ENGINE[engine]
    return MEMORY_RULES[0]


def engine_budget(layout: Layout) -> EngineBudget:
    """The per-GPU budget under the engine's own rule (or the layout's explicit fraction)."""
    return memory_rule(layout).budget(layout)
