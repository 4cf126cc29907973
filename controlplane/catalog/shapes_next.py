"""Architectures of the GLM generations after GLM-4.5: GLM-4.7, GLM-4.7-Flash, GLM-4.5V /
GLM-4.6V and GLM-5, each number pinned to where it was read.

No model hub is reachable from where this catalog was written, so the numbers come from the
model classes that define these checkpoints' configs (their defaults are documented as the
released checkpoint's shape) and from the engines' own constants for the same models. Where
a released config.json could differ from those defaults and nothing here confirms it, the
source note says so.
"""

from __future__ import annotations

from dataclasses import replace

from controlplane.catalog.architecture import Architecture, AttentionKind
from controlplane.catalog.shapes import GLM45_AIR, GLM46
from controlplane.catalog.vision import VisionEncoder

_TF = "huggingface/transformers"
_TF_LITE = (
    f"{_TF} src/transformers/models/glm4_moe_lite/modular_glm4_moe_lite.py"
    " @75a5f8b5d64114fde39d9246684008a1e9b047c9 Glm4MoeLiteConfig defaults (GLM-4.7-Flash)"
)
_TF_DSA = (
    f"{_TF} src/transformers/models/glm_moe_dsa/modular_glm_moe_dsa.py"
    " @4c94ecda4a4e6551bb5b3d8670d502101a8a819a GlmMoeDsaConfig defaults ('similar to"
    " zai-org/GLM-5'; first 3 layers dense)"
)
_TF_V = (
    f"{_TF} src/transformers/models/glm4v_moe/configuration_glm4v_moe.py"
    " @008e574391258935f3ecc3035c882e73bbcac419 Glm4vMoeTextConfig / Glm4vMoeVisionConfig"
    " defaults (auto_docstring checkpoint zai-org/GLM-4.5V)"
)
_VLLM_GLM51 = (
    "vllm-project/vllm GLM-5.1 constants (GLM51_KV_LORA_RANK 512, GLM51_QK_ROPE_HEAD_DIM 64,"
    " GLM51_QK_NOPE_HEAD_DIM 192, GLM51_INDEX_N_HEADS 32, GLM51_INDEX_TOPK 2048)"
)

# GLM-4.7: GLM-4.6's shape and 200K context (zai-org/GLM-4.5 README covers 4.6 and 4.7;
# vLLM recipes GLM/GLM.html list it among the GLM-4.X models served as GLM-4.5).
GLM47 = replace(
    GLM46,
    sources=(
        "zai-org/GLM-4.7 model card (same glm4_moe architecture as GLM-4.6, 355B-A32B,"
        " max_position_embeddings 202752); shape as GLM-4.5",
    ),
)

# GLM-4.7-Flash: DeepSeek-V3-style MLA on a small MoE (30B-A3B). The checkpoint stores one
# MTP layer at index 47 (transformers ignores `model.layers.47.*` on load).
GLM47_FLASH = Architecture(
    model_type="glm4_moe_lite",
    hidden_size=2048,
    num_layers=47,
    num_attention_heads=20,
    num_kv_heads=1,  # MLA: one latent per token (config num_key_value_heads 20 is unused)
    head_dim=192 + 64,  # qk_nope_head_dim + qk_rope_head_dim
    intermediate_size=10240,
    vocab_size=154880,
    max_context=202752,
    attention=AttentionKind.MLA,
    moe_intermediate_size=1536,
    num_routed_experts=64,
    num_shared_experts=1,
    experts_per_token=4,
    first_dense_layers=1,  # mlp_layer_types: ["dense"] + ["sparse"] * 46
    num_nextn_layers=1,
    q_lora_rank=768,
    kv_lora_rank=512,
    qk_rope_head_dim=64,
    qk_nope_head_dim=192,
    v_head_dim=256,
    sources=(_TF_LITE,),
)

# GLM-5: MLA plus DeepSeek sparse attention (an indexer per layer, top-2048 tokens).
GLM5 = Architecture(
    model_type="glm_moe_dsa",
    hidden_size=6144,
    num_layers=78,
    num_attention_heads=64,
    num_kv_heads=1,
    head_dim=192 + 64,
    intermediate_size=12288,
    vocab_size=154880,
    max_context=202752,
    attention=AttentionKind.MLA,
    moe_intermediate_size=2048,
    num_routed_experts=256,
    num_shared_experts=1,
    experts_per_token=8,
    first_dense_layers=3,
    # One MTP layer: vLLM's GLM-5 recipe serves it "with MTP speculative decoding"
    # (recipes.vllm.ai/zai-org/GLM-5.1); the count is not in the transformers defaults.
    num_nextn_layers=1,
    q_lora_rank=2048,
    kv_lora_rank=512,
    qk_rope_head_dim=64,
    qk_nope_head_dim=192,
    v_head_dim=256,
    index_n_heads=32,
    index_head_dim=128,
    index_topk=2048,
    sources=(_TF_DSA, _VLLM_GLM51),
)

# The GLM-4.5V / 4.6V vision tower. intermediate_size is transformers' default (13696, the
# GLM-4.1V value); GLM-4.5V's own config.json was not readable here, so the merger width is
# unverified (it moves the tower by about 0.1B parameters, under 0.1% of the model).
GLM4V_TOWER = VisionEncoder(
    depth=24,
    hidden_size=1536,
    num_heads=12,
    out_hidden_size=4096,
    intermediate_size=13696,
)

# GLM-4.5V: GLM-4.5-Air's language model (vocabulary 151424 in transformers' defaults) with
# a 64K context, and the vision tower. No MTP layer is declared in transformers' text config.
GLM45V = replace(
    GLM45_AIR,
    model_type="glm4v_moe",
    vocab_size=151424,
    max_context=65536,
    num_nextn_layers=0,
    vision=GLM4V_TOWER,
    sources=(_TF_V,),
)

# GLM-4.6V (106B-A12B): GLM-4.5V's architecture with a 128K context (model card: "context
# window to 128k tokens"); its config.json was not readable here.
GLM46V = replace(
    GLM45V,
    max_context=131072,
    sources=(_TF_V, "zai-org/GLM-4.6V model card: 128K context (config.json not verified)"),
)
