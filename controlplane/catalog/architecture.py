"""Model architecture: the numbers every memory and speed estimate is derived from.

An `Architecture` holds only what a `config.json` says (layer counts, widths, expert
counts). Parameter counts are derived from those numbers here, never typed in, so a
model we never catalogued (a local `config.json`) is sized by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from controlplane.catalog.quant import QuantScheme
from controlplane.catalog.vision import VisionEncoder


class AttentionKind(StrEnum):
    """How keys and values are stored in the KV cache."""

    GQA = "gqa"  # grouped-query / multi-query / multi-head: K and V per KV head
    MLA = "mla"  # DeepSeek multi-head latent attention: one compressed latent per token


class MlpKind(StrEnum):
    GATED = "gated"  # SwiGLU: gate, up, down (3 matrices)
    PLAIN = "plain"  # GELU: up, down (2 matrices)


@dataclass(frozen=True)
class Architecture:
    """Transformer shape, as a Hugging Face `config.json` gives it.

    MoE fields are zero for dense models. `first_dense_layers` are layers whose MLP is dense
    even in an MoE model (GLM-4.5 `first_k_dense_replace`, DeepSeek-V3 likewise).
    """

    model_type: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_context: int
    attention: AttentionKind = AttentionKind.GQA
    mlp: MlpKind = MlpKind.GATED
    moe_intermediate_size: int = 0
    num_routed_experts: int = 0
    num_shared_experts: int = 0
    experts_per_token: int = 0
    first_dense_layers: int = 0
    num_nextn_layers: int = 0  # MTP draft layers shipped with the checkpoint
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    # MLA only (DeepSeek-V3): latent and rope widths.
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # DeepSeek sparse attention (GLM-5 `glm_moe_dsa`): a lightning indexer per layer keeps
    # one FP8 key of index_head_dim per token and picks index_topk tokens to attend to.
    index_n_heads: int = 0
    index_head_dim: int = 0
    index_topk: int = 0
    # Vision-language models (GLM-4.5V / 4.6V `glm4v_moe`): the vision tower.
    vision: VisionEncoder | None = None
    # How a quantised checkpoint stores its linear weights (config.json quantization_config);
    # None: the catalog's default rule for the precision served (block FP8, 128-groups).
    quant: QuantScheme | None = None
    sources: tuple[str, ...] = field(default=(), compare=False)

    # ----- shape helpers -------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_routed_experts > 0

    @property
    def sparse_attention(self) -> bool:
        """DeepSeek sparse attention: an indexer and its own key cache in every layer."""
        return self.index_head_dim > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.mlp is MlpKind.GATED else 2

    # ----- parameter counts (per layer) -----------------------------------------------
    def attention_params(self) -> int:
        """Attention projections of one layer, biases included."""
        h = self.hidden_size
        if self.attention is AttentionKind.MLA:
            q_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank * self.num_attention_heads * q_head
            else:
                q = h * self.num_attention_heads * q_head
            kv_down = h * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv_up = (
                self.kv_lora_rank
                * self.num_attention_heads
                * (self.qk_nope_head_dim + self.v_head_dim)
            )
            out = self.num_attention_heads * self.v_head_dim * h
            return q + kv_down + kv_up + out + self.indexer_params()
        q_width = self.num_attention_heads * self.head_dim
        kv_width = self.num_kv_heads * self.head_dim
        params = h * (q_width + 2 * kv_width) + q_width * h
        if self.attention_bias:
            params += q_width + 2 * kv_width
        return params

    def indexer_params(self) -> int:
        """The sparse-attention indexer of one layer: wq_b (q_lora -> heads x dim), wk
        (h -> dim), its LayerNorm and weights_proj (h -> heads) (transformers
        `GlmMoeDsaIndexer`)."""
        if not self.sparse_attention:
            return 0
        dim, heads = self.index_head_dim, self.index_n_heads
        return (
            self.q_lora_rank * heads * dim
            + self.hidden_size * dim
            + 2 * dim
            + (self.hidden_size * heads)
        )

    def vision_params(self) -> int:
        return self.vision.params() if self.vision is not None else 0

    def dense_mlp_params(self) -> int:
        return self.mlp_matrices * self.hidden_size * self.intermediate_size

    def expert_params(self) -> int:
        """One routed (or shared) expert."""
        return self.mlp_matrices * self.hidden_size * self.moe_intermediate_size

    def router_params(self) -> int:
        return self.hidden_size * self.num_routed_experts if self.is_moe else 0

    def norm_params(self) -> int:
        return 2 * self.hidden_size

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def lm_head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def nextn_layer_params(self) -> int:
        """One MTP (next-n) layer: a full MoE decoder layer plus its fusion projection.

        GLM-4.5 and DeepSeek-V3 MTP layers carry `enorm`, `hnorm`, `eh_proj` (2h -> h) and a
        shared head norm; they reuse the main embedding and lm_head.
        """
        layer = self.attention_params() + self.norm_params()
        if self.is_moe:
            layer += (self.num_routed_experts + self.num_shared_experts) * self.expert_params()
            layer += self.router_params()
        else:
            layer += self.dense_mlp_params()
        return layer + 2 * self.hidden_size * self.hidden_size + 3 * self.hidden_size

    # ----- totals -----------------------------------------------------------------------
    def total_params(self, include_nextn: bool = True) -> int:
        per_layer_common = self.attention_params() + self.norm_params()
        dense = self.num_dense_layers * (per_layer_common + self.dense_mlp_params())
        moe = self.num_moe_layers * (
            per_layer_common
            + (self.num_routed_experts + self.num_shared_experts) * self.expert_params()
            + self.router_params()
        )
        total = dense + moe + self.embedding_params() + self.lm_head_params() + self.hidden_size
        total += self.vision_params()
        if include_nextn:
            total += self.num_nextn_layers * self.nextn_layer_params()
        return total

    def active_params(self) -> int:
        """Parameters touched per token in a forward pass (no MTP layer)."""
        per_layer_common = self.attention_params() + self.norm_params()
        dense = self.num_dense_layers * (per_layer_common + self.dense_mlp_params())
        moe = self.num_moe_layers * (
            per_layer_common
            + (self.experts_per_token + self.num_shared_experts) * self.expert_params()
            + self.router_params()
        )
        return dense + moe + self.embedding_params() // self.vocab_size + self.lm_head_params()

    # ----- KV cache ----------------------------------------------------------------------
    def kv_values_per_token_per_layer(self, tensor_parallel: int = 1) -> int:
        """Cached values per token and layer on one tensor-parallel rank.

        GQA: K and V for each KV head on the rank; heads are replicated when TP exceeds the
        KV-head count (SGLang `model_runner`, vLLM `get_num_kv_heads`: max(1, kv_heads / tp)).
        MLA: the compressed latent plus the rope key, the same on every rank (SGLang MLA pool).
        """
        if self.attention is AttentionKind.MLA:
            return self.kv_lora_rank + self.qk_rope_head_dim
        heads_per_rank = max(1, self.num_kv_heads // tensor_parallel)
        return 2 * heads_per_rank * self.head_dim

    def kv_bytes_per_token(self, bytes_per_value: float, tensor_parallel: int = 1) -> float:
        """KV bytes per token for all main layers on one TP rank."""
        return (
            self.kv_values_per_token_per_layer(tensor_parallel) * self.num_layers * bytes_per_value
        )
