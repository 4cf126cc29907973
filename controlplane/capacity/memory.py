"""GPU memory of one replica, pipeline stage by stage (every rank of a stage is alike).

Per rank: weights (see `weights`), the engine's reserve (see `engine_rules`) and the KV
pool the engine builds from what is left. A pool's token capacity is its smallest stage's
(SGLang all-reduces the minimum over pipeline ranks, `model_runner_kv_cache_mixin.init_memory`;
vLLM gives every worker the smallest block count), in whole pages (vLLM blocks).

With EAGLE / MTP the draft layer's weights and its KV (the same token count, one layer) are
counted inside the static budget: recent SGLang counts the NextN draft weights when it checks
`mem_fraction_static` ("the EAGLE/NextN draft weights add ~3.07 GB and are now counted",
SemiAnalysisAI/InferenceX#2128), and the draft pool is sized to the target's token count.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.capacity.attention_cache import kv_cache_bytes_per_token_layer, page_tokens
from controlplane.capacity.engine_rules import EngineBudget, engine_budget, memory_rule
from controlplane.capacity.layout import Layout
from controlplane.capacity.vision import vision_extra_bytes
from controlplane.capacity.weights import Split, WeightBreakdown, rank_weights, stage_layers
from controlplane.catalog import GIB


@dataclass(frozen=True)
class StageMemory:
    """One pipeline stage: the memory of each of its ranks."""

    stage: int
    ranks: tuple[int, int]  # [first, last] GPU rank of the replica in this stage
    layers: tuple[int, int]  # [start, end) decoder layers
    weights: WeightBreakdown
    offloaded_bytes: float  # weights streamed from host (vLLM --cpu-offload-gb)
    kv_bytes_per_token: float  # this rank's KV per token (its layers, plus the draft layer)
    kv_pool_bytes: float  # static budget - weights on the GPU (negative: weights do not fit)
    page_tokens: int = 1  # the engine allocates whole pages of this many tokens (vLLM blocks)

    @property
    def weights_on_gpu(self) -> float:
        return max(0.0, self.weights.total - self.offloaded_bytes)

    @property
    def kv_tokens(self) -> int:
        """Tokens the pool holds: whole pages only (vLLM rounds down to whole blocks)."""
        if self.kv_pool_bytes <= 0 or self.kv_bytes_per_token <= 0:
            return 0
        pages = int(self.kv_pool_bytes // (self.kv_bytes_per_token * self.page_tokens))
        return pages * self.page_tokens


@dataclass(frozen=True)
class ReplicaMemory:
    layout: Layout
    stages: tuple[StageMemory, ...]
    budget: EngineBudget

    @property
    def kv_tokens(self) -> int:
        """KV tokens one pool (one data-parallel rank) holds: the smallest stage decides."""
        return min(s.kv_tokens for s in self.stages)

    @property
    def required_tokens(self) -> int:
        return self.layout.required_tokens

    @property
    def fits(self) -> bool:
        return self.kv_tokens >= max(1, self.required_tokens)

    @property
    def required_pool_tokens(self) -> int:
        """Required tokens rounded up to whole pages (what the pool must reach)."""
        page = self.stages[0].page_tokens
        return -(-max(1, self.required_tokens) // page) * page

    def headroom_bytes(self, stage: StageMemory) -> float:
        """Budget left on each rank of `stage` after weights and the required KV."""
        return stage.kv_pool_bytes - self.required_pool_tokens * stage.kv_bytes_per_token

    @property
    def tightest(self) -> StageMemory:
        """The stage with the least headroom."""
        return min(self.stages, key=self.headroom_bytes)

    @property
    def min_headroom_bytes(self) -> float:
        return self.headroom_bytes(self.tightest)


def kv_bytes_per_token_layer(layout: Layout) -> float:
    """KV bytes per token and layer on one rank: max(1, kv_heads / tp) heads (replicated when
    TP exceeds the KV heads: SGLang `model_runner`, vLLM `get_num_kv_heads`); FP8 halves BF16.
    MLA and sparse attention: `attention_cache` (latent, FP8 sparse layout, indexer keys)."""
    return kv_cache_bytes_per_token_layer(layout.arch, layout.kv_dtype, layout.tp)


def replica_memory(layout: Layout) -> ReplicaMemory:
    """Per-stage GPU memory of one replica under its engine's sizing rule."""
    arch = layout.arch
    budget = engine_budget(layout)
    rule = memory_rule(layout)
    page = page_tokens(arch, budget.page_tokens, rule.sparse_attention_page)
    # vLLM's profile of a vision encoder, beyond the language model's peak (every rank:
    # conservative by that much on later pipeline stages, which run no encoder).
    vision = vision_extra_bytes(layout) if rule.profiles_vision_encoder else 0.0
    mtp_layers = arch.num_nextn_layers if layout.speculative else 0
    per_layer = kv_bytes_per_token_layer(layout)
    group = layout.tp * layout.dp
    offload = layout.cpu_offload_gb * GIB
    stages = []
    for stage, (start, end) in enumerate(stage_layers(arch.num_layers, layout.pp)):
        last = stage == layout.pp - 1
        draft = mtp_layers if last else 0
        split = Split(layout.tp, layout.dense_tp, layout.pp, layout.moe_group, stage, draft)
        weights = rank_weights(arch, layout.precision, split)
        on_gpu = max(0.0, weights.total - offload)
        kv_layers = (end - start) + (mtp_layers if last else 0)
        stages.append(
            StageMemory(
                stage=stage,
                ranks=(stage * group, (stage + 1) * group - 1),
                layers=(start, end),
                weights=weights,
                offloaded_bytes=min(offload, weights.total),
                kv_bytes_per_token=kv_layers * per_layer,
                kv_pool_bytes=budget.static_bytes - on_gpu - vision,
                page_tokens=page,
            )
        )
    return ReplicaMemory(layout, tuple(stages), budget)
