"""`FastCheck`: whether a split fits, in two dictionary lookups and a comparison.

The search evaluates every split of every model on every GPU type, so it cannot build a
per-rank breakdown each time. It uses the same sums as `memory.replica_memory`, regrouped:

    a split fits  <=>  static budget per GPU >= requirement
    requirement = max over stages of (weights on the GPU + KV tokens x KV bytes per token)

The requirement depends on the model, the split, the context and the batch, not on the
GPU type (cached per model and shape); the static budget depends on the GPU and the parallel
sizes, not on the model (a rule with `static_by_gpu`; cached per GPU and shape).
`tests/unit/capacity` checks that `FastCheck` and `replica_memory(...).fits` agree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from controlplane.capacity.attention_cache import kv_cache_bytes_per_token_layer, page_tokens
from controlplane.capacity.engine_rules import is_nvlink, memory_rule
from controlplane.capacity.layout import Layout
from controlplane.capacity.weights import distinct_stage_pairs
from controlplane.catalog import BYTES_PER_VALUE, GIB, Architecture


class SplitShape(NamedTuple):
    tp: int
    pp: int
    dp: int  # > 1 only with DP attention
    ep: int


# Caches keyed by the Architecture's identity (hashing a 25-field dataclass on every lookup
# would cost more than the check itself); each value keeps its Architecture alive.
_BY_MODEL: dict[tuple[Any, ...], tuple[Architecture, dict[Any, Any]]] = {}
_STATIC_BY_GPU: dict[tuple[Any, ...], dict[SplitShape, float]] = {}


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
        self.rule = memory_rule(base)
        self._page = page_tokens(arch, self.rule.pool_page(base), self.rule.sparse_attention_page)
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
        if not self.rule.static_by_gpu:  # the rule reads more than the GPU and the split
            self.static: dict[SplitShape, float] = {}
        else:
            prefix = (
                self.rule.engine,
                base.gpu.memory_bytes,
                base.gpu.torch_total_bytes,
                is_nvlink(base.gpu),
                base.speculative,
                base.chunked_prefill,
                base.mem_fraction,
            )
            self.static = _STATIC_BY_GPU.setdefault(prefix, {})
        self._kv_bytes, self._offload = kv_bytes, offload

    def fits(self, shape: SplitShape) -> bool:
        required = self.requirement.get(shape)
        if required is None:
            required = self.requirement[shape] = self._requirement(shape)
        static = self.static.get(shape)
        if static is None:
            static = self.static[shape] = self.rule.split_static(self.base, *shape)
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
