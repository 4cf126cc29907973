"""`FastCheck`: whether a split fits, in two dictionary lookups and a comparison.

The search evaluates every split of every model on every GPU type, so it cannot build a
per-rank breakdown each time. It uses the same sums as `memory.replica_memory`, regrouped:

    a split fits  <=>  static budget per GPU >= requirement
    requirement = max over stages of (weights on the GPU + KV tokens x KV bytes per token)

The requirement depends on the model, the split, the context and the batch, not on the
GPU type (cached per model and shape); the static budget depends on the GPU and the parallel
sizes, not on the model (SGLang; cached per GPU and shape). `tests/unit/capacity` checks
that `FastCheck` and `replica_memory(...).fits` agree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from controlplane.capacity.attention_cache import kv_cache_bytes_per_token_layer, page_tokens
from controlplane.capacity.engine_rules import SglangInputs, is_nvlink, sglang_static_bytes
from controlplane.capacity.layout import Layout
from controlplane.capacity.vision import vision_extra_bytes
from controlplane.capacity.vllm_rules import vllm_page_size, vllm_static_bytes
from controlplane.capacity.weights import distinct_stage_pairs
from controlplane.catalog import BYTES_PER_VALUE, GIB, Architecture
from controlplane.spec.models import EngineKind


class SplitShape(NamedTuple):
    tp: int
    pp: int
    dp: int  # > 1 only with DP attention
    ep: int


# Caches keyed by the Architecture's identity (hashing a 25-field dataclass on every lookup
# would cost more than the check itself); each value keeps its Architecture alive.
_BY_MODEL: dict[tuple[Any, ...], tuple[Architecture, dict[Any, Any]]] = {}
_SGLANG_STATIC: dict[tuple[Any, ...], dict[SplitShape, float]] = {}


def model_cache(arch: Architecture, *key: Any) -> dict[Any, Any]:
    """A dict for per-model values, one per (model, key)."""
    full = (id(arch), *key)
    entry = _BY_MODEL.get(full)
    if entry is None or entry[0] is not arch:
        entry = _BY_MODEL[full] = (arch, {})
    return entry[1]


class FastCheck:
    """`replica_memory(apply_shape(base, shape)).fits` for many shapes of one base layout."""

    def __init__(self, base: Layout) -> None:
        self.base = base
        arch = base.arch
        self.mtp = arch.num_nextn_layers if base.speculative else 0
        kv_bytes = BYTES_PER_VALUE[base.kv_dtype]
        offload = base.cpu_offload_gb * GIB
        vllm = base.engine is EngineKind.VLLM
        self._page = page_tokens(arch, base.engine, vllm_page_size(base) if vllm else 1)
        self.requirement: dict[SplitShape, float] = model_cache(
            arch,
            "req",
            base.precision,
            self.mtp,
            kv_bytes,
            base.context,
            base.max_num_seqs,
            offload,
            self._page,
        )
        if vllm or base.engine is EngineKind.TRTLLM:  # rules that depend on more than the GPU
            self.static: dict[SplitShape, float] = {}
        else:
            prefix = (
                base.gpu.memory_bytes,
                base.gpu.torch_total_bytes,
                is_nvlink(base.gpu),
                base.speculative,
                base.chunked_prefill,
                base.mem_fraction,
            )
            self.static = _SGLANG_STATIC.setdefault(prefix, {})
        self._kv_bytes, self._offload = kv_bytes, offload

    def fits(self, shape: SplitShape) -> bool:
        required = self.requirement.get(shape)
        if required is None:
            required = self.requirement[shape] = self._requirement(shape)
        static = self.static.get(shape)
        if static is None:
            static = self.static[shape] = _static_bytes(self.base, shape)
        return static >= required

    def _requirement(self, shape: SplitShape) -> float:
        base, arch = self.base, self.base.arch
        moe_group = shape.tp * shape.dp
        pairs = distinct_stage_pairs(
            arch, base.precision, (shape.tp, moe_group, shape.pp, moe_group, self.mtp)
        )
        tokens = max(1, -(-base.max_num_seqs // shape.dp) * base.context)
        tokens = -(-tokens // self._page) * self._page
        per_layer = tokens * kv_cache_bytes_per_token_layer(arch, base.kv_dtype, shape.tp)
        return max(max(0.0, w - self._offload) + per_layer * layers for w, layers in pairs)


def _static_bytes(base: Layout, shape: SplitShape) -> float:
    """Per-GPU bytes the engine gives weights + KV (as `engine_rules.engine_budget`)."""
    if base.engine is EngineKind.VLLM:
        vision = vision_extra_bytes(base.with_(tp=shape.tp)) if base.arch.vision else 0.0
        return vllm_static_bytes(base, shape.tp, shape.pp, shape.dp) - vision
    if base.engine is EngineKind.TRTLLM:
        from controlplane.capacity.trtllm_rules import trtllm_terms

        split = base.with_(tp=shape.tp, pp=shape.pp, dp=shape.dp, ep=shape.ep)
        return trtllm_terms(split.with_(dp_attention=shape.dp > 1))[1]
    inputs = SglangInputs(
        base.gpu.memory_bytes,
        shape.tp * shape.dp,
        shape.pp,
        shape.dp,
        shape.dp > 1,
        base.speculative,
        base.chunked_prefill,
        base.mem_fraction,
        base.gpu.torch_total_bytes,
        is_nvlink(base.gpu),
    )
    return sglang_static_bytes(inputs)
