"""Weight bytes per GPU rank, by tensor class and dtype, split the way the engines split them.

- Tensor parallel shards attention heads, the dense MLP and shared experts; norms and the
  MoE router gate are replicated; K/V projections are replicated when TP exceeds the KV heads.
- Routed experts are split over the MoE group (TP, or whole experts under EP): either way a
  rank holds 1 / group of them (EP x MoE-TP = group in SGLang and vLLM).
- Pipeline parallel gives each stage a contiguous run of layers (vLLM `get_pp_indices`: the
  remainder goes to the stages before the last); the embedding sits on the first stage and
  the lm_head (and the MTP draft layer) on the last.
- The embedding and lm_head are vocab-parallel over TP; under SGLang's DP attention the
  embedding is split over the attention-TP group only (`VocabParallelEmbedding(...,
  use_attn_tp_group=...)`) while the lm_head spans the whole TP group.
- Block-FP8 checkpoints keep the embedding, lm_head, norms, biases and router gate in BF16
  and add one float32 scale per 128 x 128 block of every FP8 matrix. Weight-only INT8/INT4
  keep the same tensors 16-bit and add one FP16 scale per group of 128 values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from controlplane.capacity import constants as c
from controlplane.capacity.matrices import layer_edges, mtp_extra_edges
from controlplane.catalog import BYTES_PER_VALUE, FP8_BLOCK, Architecture, AttentionKind, Precision


def vision_rank_params(arch: Architecture, tp: int) -> float:
    """A vision tower's parameters on one rank of the first stage, counted with the
    embedding, 16-bit in every checkpoint. Whole on every rank: vLLM's GLM-V recipe runs the
    encoder with `--mm-encoder-tp-mode data` (one copy per rank, images split over ranks);
    SGLang shards it over TP, which needs less; glmctl counts the larger (`tp` is unused)."""
    del tp
    return float(arch.vision_params())


@dataclass(frozen=True)
class WeightBreakdown:
    """Weight bytes one rank holds, by tensor class."""

    embedding: float = 0.0
    lm_head: float = 0.0
    attention: float = 0.0
    dense_mlp: float = 0.0
    shared_experts: float = 0.0
    routed_experts: float = 0.0
    router_and_norms: float = 0.0
    quant_scales: float = 0.0
    mtp_draft: float = 0.0

    @property
    def total(self) -> float:
        return (
            self.embedding
            + self.lm_head
            + self.attention
            + self.dense_mlp
            + self.shared_experts
            + self.routed_experts
            + self.router_and_norms
            + self.quant_scales
            + self.mtp_draft
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "embedding": self.embedding,
            "lm_head": self.lm_head,
            "attention": self.attention,
            "dense_mlp": self.dense_mlp,
            "shared_experts": self.shared_experts,
            "routed_experts": self.routed_experts,
            "router_and_norms": self.router_and_norms,
            "quant_scales": self.quant_scales,
            "mtp_draft": self.mtp_draft,
        }


@dataclass(frozen=True)
class Split:
    """How one replica splits the model: the degrees the weight split depends on."""

    tp: int  # attention heads
    dense_tp: int  # dense MLP, shared experts, vocab (the whole TP group under DP attention)
    pp: int
    moe_group: int  # ranks the routed experts of a layer are spread over (EP x MoE-TP)
    stage: int  # this rank's pipeline stage
    mtp_layers: int  # draft layers held (on the last stage)


@lru_cache(maxsize=4096)
def stage_layers(num_layers: int, pp: int) -> tuple[tuple[int, int], ...]:
    """[start, end) layer ranges per pipeline stage (vLLM `get_pp_indices`)."""
    base = num_layers // pp
    sizes = [base] * pp
    for i in range(2, num_layers % pp + 2):  # extra layers to the stages before the last
        sizes[-i if i <= pp else 0] += 1
    ranges, start = [], 0
    for size in sizes:
        ranges.append((start, start + size))
        start += size
    return tuple(ranges)


def _quant_overhead(precision: Precision, arch: Architecture) -> float:
    """Scale (and zero-point) bytes per quantised weight value: the checkpoint's own scheme
    (`quantization_config`) when it is served as stored, else the catalog's default rule."""
    scheme = arch.quant
    if scheme is not None and scheme.bytes_per_value == BYTES_PER_VALUE[precision]:
        return scheme.scale_bytes_per_value
    if precision is Precision.FP8:
        return c.FP8_SCALE_BYTES / (FP8_BLOCK * FP8_BLOCK)
    if precision in (Precision.INT8, Precision.INT4):
        return c.INT_SCALE_BYTES / c.INT_GROUP_SIZE
    return 0.0


def _edge_bytes(precision: Precision, arch: Architecture) -> tuple[float, float]:
    """(bytes per input row, per output column) of each quantised matrix: the checkpoint's
    own scheme's, when it is served as stored (GPTQ `g_idx`, per-channel scales)."""
    scheme = arch.quant
    if scheme is not None and scheme.bytes_per_value == BYTES_PER_VALUE[precision]:
        return scheme.row_bytes, scheme.column_bytes
    return 0.0, 0.0


def _layer_edge_bytes(
    arch: Architecture, precision: Precision, moe: bool, split: tuple[int, int, int]
) -> float:
    """Edge bytes of one decoder layer on a rank of (tp, dense_tp, moe_group)."""
    row_b, col_b = _edge_bytes(precision, arch)
    if not (row_b or col_b):
        return 0.0
    rows, cols = layer_edges(arch, moe, *split)
    return rows * row_b + cols * col_b


def _keep_bytes(precision: Precision) -> float:
    """Bytes of the tensors a quantised checkpoint keeps unquantised (16-bit)."""
    return max(BYTES_PER_VALUE[precision], 2.0)


def _attention_rank(arch: Architecture, tp: int) -> tuple[float, float]:
    """(quantisable linear params, 16-bit bias params) of one layer's attention on one rank."""
    h = arch.hidden_size
    if arch.attention is AttentionKind.MLA:
        # SGLang/vLLM DeepSeek: q_a/kv_a down-projections replicated, up and out sharded.
        q_head = arch.qk_nope_head_dim + arch.qk_rope_head_dim
        heads = arch.num_attention_heads / tp
        # The sparse-attention indexer (GLM-5) is replicated (vLLM `Indexer`: ReplicatedLinear).
        replicated = h * (arch.kv_lora_rank + arch.qk_rope_head_dim) + arch.indexer_params()
        if arch.q_lora_rank:
            replicated += h * arch.q_lora_rank
            sharded = arch.q_lora_rank * heads * q_head
        else:
            sharded = h * heads * q_head
        sharded += arch.kv_lora_rank * heads * (arch.qk_nope_head_dim + arch.v_head_dim)
        sharded += heads * arch.v_head_dim * h
        return replicated + sharded, 0.0
    q_width = arch.num_attention_heads * arch.head_dim / tp
    kv_width = max(1.0, arch.num_kv_heads / tp) * arch.head_dim
    linear = h * (q_width + 2 * kv_width) + q_width * h
    bias = (q_width + 2 * kv_width) if arch.attention_bias else 0.0
    return linear, bias


@dataclass(frozen=True)
class _LayerRank:
    """Parameters of one decoder layer on one rank, by class."""

    attention: float
    bias: float
    dense_mlp: float
    shared: float
    routed: float
    gate_and_norms: float


def _layer_rank(arch: Architecture, moe: bool, split: Split) -> _LayerRank:
    attention, bias = _attention_rank(arch, split.tp)
    norms = arch.norm_params()
    if not moe:
        return _LayerRank(
            attention, bias, arch.dense_mlp_params() / split.dense_tp, 0.0, 0.0, norms
        )
    return _LayerRank(
        attention,
        bias,
        0.0,
        arch.num_shared_experts * arch.expert_params() / split.dense_tp,
        arch.num_routed_experts * arch.expert_params() / split.moe_group,
        norms + arch.router_params(),
    )


@lru_cache(maxsize=65536)
def rank_weights(arch: Architecture, precision: Precision, split: Split) -> WeightBreakdown:
    """Weight bytes of one rank of pipeline stage `split.stage` (cached: the search asks for
    the same split under many GPU types and contexts)."""
    wb, keep, scale = (
        BYTES_PER_VALUE[precision],
        _keep_bytes(precision),
        _quant_overhead(precision, arch),
    )
    start, end = stage_layers(arch.num_layers, split.pp)[split.stage]
    dense_layers = max(0, min(end, arch.num_dense_layers) - start)
    moe_layers = (end - start) - dense_layers
    dense = _layer_rank(arch, False, split)
    moe = _layer_rank(arch, True, split) if arch.is_moe else dense
    totals = {
        name: dense_layers * getattr(dense, name) + moe_layers * getattr(moe, name)
        for name in ("attention", "bias", "dense_mlp", "shared", "routed", "gate_and_norms")
    }
    head_rank = math.ceil(arch.vocab_size / split.dense_tp) * arch.hidden_size
    embed_rank = math.ceil(arch.vocab_size / split.tp) * arch.hidden_size
    first, last = split.stage == 0, split.stage == split.pp - 1
    embedding = (embed_rank + vision_rank_params(arch, split.tp)) * keep if first else 0.0
    lm_head = head_rank * keep if last and (not arch.tie_word_embeddings or split.pp > 1) else 0.0
    mtp = _mtp_rank(arch, precision, split) if last else 0.0
    quantised = totals["attention"] + totals["dense_mlp"] + totals["shared"] + totals["routed"]
    shape = (split.tp, split.dense_tp, split.moe_group)
    edges = dense_layers * _layer_edge_bytes(arch, precision, False, shape)
    edges += moe_layers * _layer_edge_bytes(arch, precision, arch.is_moe, shape)
    final_norm = arch.hidden_size if last else 0
    return WeightBreakdown(
        embedding=embedding,
        lm_head=lm_head,
        attention=totals["attention"] * wb + totals["bias"] * keep,
        dense_mlp=totals["dense_mlp"] * wb,
        shared_experts=totals["shared"] * wb,
        routed_experts=totals["routed"] * wb,
        router_and_norms=(totals["gate_and_norms"] + final_norm) * keep,
        quant_scales=quantised * scale + edges,
        mtp_draft=mtp,
    )


def _mtp_rank(arch: Architecture, precision: Precision, split: Split) -> float:
    """The MTP draft layers on one rank: a MoE decoder layer, eh_proj, norms; the draft
    shares the main embedding and lm_head (SGLang EAGLE `set_embed_and_head`)."""
    if split.mtp_layers == 0:
        return 0.0
    wb, keep, scale = (
        BYTES_PER_VALUE[precision],
        _keep_bytes(precision),
        _quant_overhead(precision, arch),
    )
    layer = _layer_rank(arch, arch.is_moe, split)
    linear = layer.attention + layer.dense_mlp + layer.shared + layer.routed
    eh_proj = 2 * arch.hidden_size * arch.hidden_size / split.tp
    norms = layer.gate_and_norms + 3 * arch.hidden_size
    per_layer = (linear + eh_proj) * (wb + scale) + (norms + layer.bias) * keep
    per_layer += _mtp_edge_bytes(arch, precision, split.tp, split.dense_tp, split.moe_group)
    return split.mtp_layers * per_layer


def _mtp_edge_bytes(
    arch: Architecture, precision: Precision, tp: int, dense_tp: int, moe_group: int
) -> float:
    """Edge bytes of one MTP layer: its decoder layer and `eh_proj`."""
    row_b, col_b = _edge_bytes(precision, arch)
    rows, cols = mtp_extra_edges(arch, tp)
    extra = rows * row_b + cols * col_b
    return extra + _layer_edge_bytes(arch, precision, arch.is_moe, (tp, dense_tp, moe_group))


def checkpoint_bytes(arch: Architecture, precision: Precision, with_mtp: bool = True) -> float:
    """Bytes of the whole checkpoint on disk (what the nodes read and page-cache)."""
    split = Split(tp=1, dense_tp=1, pp=1, moe_group=1, stage=0, mtp_layers=arch.num_nextn_layers)
    weights = rank_weights(arch, precision, split)
    return weights.total - (0.0 if with_mtp else weights.mtp_draft)


@dataclass(frozen=True)
class _LayerBytes:
    """Bytes per rank of one layer of each kind, and of the first / last stage's extras."""

    dense_layer: float
    moe_layer: float
    first_extra: float  # embedding
    last_extra: float  # final norm, lm_head (unless tied on one stage), MTP draft layers


def _layer_bytes(
    arch: Architecture, precision: Precision, split_shape: tuple[int, int, int, int, int]
) -> _LayerBytes:
    tp, dense_tp, pp, moe_group, mtp_layers = split_shape
    wb, keep, scale = (
        BYTES_PER_VALUE[precision],
        _keep_bytes(precision),
        _quant_overhead(precision, arch),
    )
    quant = wb + scale
    attn_linear, bias = _attention_rank(arch, tp)
    common_keep = bias + arch.norm_params()
    dense_linear = attn_linear + arch.dense_mlp_params() / dense_tp
    if arch.is_moe:
        expert = arch.expert_params()
        moe_linear = attn_linear + arch.num_shared_experts * expert / dense_tp
        moe_linear += arch.num_routed_experts * expert / moe_group
        moe_keep = common_keep + arch.router_params()
    else:
        moe_linear, moe_keep = dense_linear, common_keep
    vocab = math.ceil(arch.vocab_size / dense_tp) * arch.hidden_size * keep
    embedding = (
        math.ceil(arch.vocab_size / tp) * arch.hidden_size + vision_rank_params(arch, tp)
    ) * keep
    dense_edges = _layer_edge_bytes(arch, precision, False, (tp, dense_tp, moe_group))
    moe_edges = _layer_edge_bytes(arch, precision, arch.is_moe, (tp, dense_tp, moe_group))
    mtp = 0.0
    if mtp_layers:
        eh_proj = 2 * arch.hidden_size * arch.hidden_size / tp
        keep_params = moe_keep + 3 * arch.hidden_size
        mtp = mtp_layers * ((moe_linear + eh_proj) * quant + keep_params * keep)
        mtp += mtp_layers * _mtp_edge_bytes(arch, precision, tp, dense_tp, moe_group)
    last = arch.hidden_size * keep + mtp
    if not arch.tie_word_embeddings or pp > 1:
        last += vocab
    return _LayerBytes(
        dense_linear * quant + common_keep * keep + dense_edges,
        moe_linear * quant + moe_keep * keep + moe_edges,
        embedding,
        last,
    )


_LAYER_CACHE: dict[
    tuple[int, Precision, int, int, int, int, bool], tuple[Architecture, _LayerBytes]
] = {}


def _layer_bytes_cached(
    arch: Architecture, precision: Precision, split_shape: tuple[int, int, int, int, int]
) -> _LayerBytes:
    """`_layer_bytes`, cached by the model's identity: pipeline splits of one TP / MoE
    shape share it (only whether the last stage also holds a tied lm_head depends on pp)."""
    tp, dense_tp, pp, moe_group, mtp = split_shape
    key = (id(arch), precision, tp, dense_tp, moe_group, mtp, pp > 1)
    entry = _LAYER_CACHE.get(key)
    if entry is None or entry[0] is not arch:
        entry = _LAYER_CACHE[key] = (arch, _layer_bytes(arch, precision, split_shape))
    return entry[1]


@lru_cache(maxsize=65536)
def stage_weight_totals(
    arch: Architecture, precision: Precision, split_shape: tuple[int, int, int, int, int]
) -> tuple[float, ...]:
    """Weight bytes per rank of every pipeline stage: the same sums as `rank_weights`.

    `split_shape` is (tp, dense_tp, pp, moe_group, mtp_layers).
    """
    pp = split_shape[2]
    sizes = _layer_bytes(arch, precision, split_shape)
    return tuple(
        _stage_bytes(arch, sizes, stage, pp, start, end)
        for stage, (start, end) in enumerate(stage_layers(arch.num_layers, pp))
    )


def _stage_bytes(
    arch: Architecture, sizes: _LayerBytes, stage: int, pp: int, start: int, end: int
) -> float:
    dense_n = max(0, min(end, arch.num_dense_layers) - start) if arch.is_moe else 0
    total = dense_n * sizes.dense_layer + (end - start - dense_n) * sizes.moe_layer
    if stage == 0:
        total += sizes.first_extra
    if stage == pp - 1:
        total += sizes.last_extra
    return total


def distinct_stage_pairs(
    arch: Architecture, precision: Precision, split_shape: tuple[int, int, int, int, int]
) -> tuple[tuple[float, int], ...]:
    """(weight bytes per rank, KV layers) of the stages that can be the tightest.

    Only a few stages differ: the first (embedding), those holding the dense layers, the
    last (lm_head, MTP draft layer) and the middle stages of the two sizes the pipeline
    split produces (`stage_kinds`); each kind is computed once.
    """
    pp, mtp = split_shape[2], split_shape[4]
    sizes = _layer_bytes_cached(arch, precision, split_shape)
    dense = arch.num_dense_layers if arch.is_moe else 0
    return tuple(
        (
            dense_n * sizes.dense_layer
            + moe_n * sizes.moe_layer
            + (sizes.first_extra if first else 0.0)
            + (sizes.last_extra if last else 0.0),
            dense_n + moe_n + (mtp if last else 0),
        )
        for dense_n, moe_n, first, last in stage_kinds(arch.num_layers, dense, pp)
    )


@lru_cache(maxsize=65536)
def stage_kinds(layers: int, dense: int, pp: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """(dense layers, MoE layers, is first, is last) of the distinct kinds of stage.

    The split of `stage_layers` (vLLM `get_pp_indices`): stages first_long .. pp-2 hold one
    layer more; dense layers come first. Candidates are the first stage, the stages holding
    dense layers, the last stage and one middle stage of each size.
    """
    base, extra = divmod(layers, pp)
    first_long = pp - 1 - extra

    def bounds(i: int) -> tuple[int, int]:
        start = i * base + max(0, i - first_long) if extra else i * base
        return start, start + base + (1 if extra and first_long <= i <= pp - 2 else 0)

    picks = {0, pp - 1}
    i = 0
    while i < pp - 1 and bounds(i)[0] < dense:
        picks.add(i)
        i += 1
    if i < min(pp - 1, first_long):
        picks.add(i)
    if extra and max(i, first_long) <= pp - 2:
        picks.add(max(i, first_long))
    kinds = set()
    for stage in picks:
        start, end = bounds(stage)
        dense_n = max(0, min(end, dense) - start)
        kinds.add((dense_n, end - start - dense_n, stage == 0, stage == pp - 1))
    return tuple(sorted(kinds))
