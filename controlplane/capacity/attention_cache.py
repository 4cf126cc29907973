"""KV-cache bytes per token and layer as SGLang and vLLM allocate them, for every attention
kind the GLM family uses: grouped-query (GLM-4.5/4.6/4.7, GLM-4.5V), multi-head latent
attention (GLM-4.7-Flash) and MLA with DeepSeek sparse attention (GLM-5).

GQA: K and V for max(1, kv_heads / tp) heads on each rank (unchanged from `Architecture`).

MLA, both engines: one latent of kv_lora_rank values plus the rope key of qk_rope_head_dim
values per token and layer, the same on every tensor-parallel rank (SGLang
python/sglang/srt/mem_cache/memory_pool.py @14c3feee2390a7b5a06accc7af651bde8c5211c6
`MLATokenToKVPool`: kv_cache_dim = kv_lora_rank + qk_rope_head_dim, one buffer per layer of
(size + page, 1, kv_cache_dim); vLLM MLA attention: one KV head of that width). With an FP8
KV cache the latent and the rope part are both one byte (one per-tensor scale).

Sparse attention (DSA) stores more per token and layer:
- the MLA entry: in FP8 the FlashMLA sparse layout, 512 FP8 latent values, 4 float32 scales
  (one per 128 values) and the 64 rope values kept BF16: 656 bytes (vLLM `fp8_ds_mla`,
  vllm/v1/attention/backends/mla/flashmla_sparse.py; SGLang NSA `override_kv_cache_dim`
  when `nsa_kv_cache_store_fp8`); in BF16 the plain MLA entry;
- the indexer's key cache, always FP8 with one float32 scale per 128 values:
  index_head_dim + index_head_dim / 128 x 4 = 132 bytes (vLLM
  vllm/model_executor/models/deepseek_v2.py @b863fe5bf4e19680572603b4e166faefc5725551
  `Indexer`: `DeepseekV32IndexerCache(head_dim=head_dim + head_dim // quant_block_size * 4,
  dtype=uint8)`; SGLang `NSATokenToKVPool` index_k_with_scale buffer, index_head_dim 128).
The indexer picks index_topk tokens per query: attention reads at most that many latents,
but the cache still holds every token of the context (top-k saves compute and reads, not
capacity), so capacity here counts every token.

Pages: vLLM allocates MLA in blocks of 64 tokens (FlashMLA); SGLang uses page size 1 for
plain MLA and 64 for DSA (its NSA backend requires 64-token pages). Where they differ the
function takes the engine.
"""

from __future__ import annotations

from controlplane.catalog import BYTES_PER_VALUE, Architecture, AttentionKind, Precision

DSA_QUANT_BLOCK = 128  # values per float32 scale in the FP8 sparse layouts
DSA_SCALE_BYTES = 4  # one float32 scale
DSA_ROPE_BYTES = 2  # the rope part stays BF16 in the FP8 sparse layout
SGLANG_DSA_PAGE_SIZE = 64


def indexer_bytes_per_token_layer(arch: Architecture) -> float:
    """The sparse-attention indexer's FP8 key and its scales, per token and layer."""
    if not arch.sparse_attention:
        return 0.0
    dim = arch.index_head_dim
    return float(dim + dim // DSA_QUANT_BLOCK * DSA_SCALE_BYTES)


def latent_bytes_per_token_layer(arch: Architecture, kv_dtype: Precision) -> float:
    """The MLA cache entry per token and layer (latent + rope key)."""
    if arch.sparse_attention and kv_dtype is Precision.FP8:
        latent = arch.kv_lora_rank
        scales = latent // DSA_QUANT_BLOCK * DSA_SCALE_BYTES
        return float(latent + scales + arch.qk_rope_head_dim * DSA_ROPE_BYTES)
    return (arch.kv_lora_rank + arch.qk_rope_head_dim) * BYTES_PER_VALUE[kv_dtype]


def kv_cache_bytes_per_token_layer(arch: Architecture, kv_dtype: Precision, tp: int) -> float:
    """KV-cache bytes one rank holds per token and layer (MLA: the same on every rank)."""
    if arch.attention is AttentionKind.MLA:
        return latent_bytes_per_token_layer(arch, kv_dtype) + indexer_bytes_per_token_layer(arch)
    return arch.kv_values_per_token_per_layer(tp) * BYTES_PER_VALUE[kv_dtype]


def page_tokens(arch: Architecture, engine_page: int, sparse_attention_page: int) -> int:
    """Tokens per KV page: with sparse attention, the engine's DSA page when larger
    (SGLang's: SGLANG_DSA_PAGE_SIZE, its rule's `sparse_attention_page`); otherwise the
    engine's own (vLLM's MLA block size is already in its rule)."""
    if arch.sparse_attention:
        return max(engine_page, sparse_attention_page)
    return engine_page
