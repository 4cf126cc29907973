"""`config.json` documents for the architectures after GLM-4.5 (`glm4_moe_lite`,
`glm_moe_dsa`, `glm4v_moe`), under the keys their transformers / vLLM config classes read
(catalog/shapes_next.py names the classes). Used to build config-only model folders for the
engines' parser checks and the tiny MLA checkpoint; GLM-4.5's own is
`local.tiny_model.tiny_config`.
"""

from __future__ import annotations

from typing import Any

from controlplane.catalog.architecture import Architecture
from controlplane.catalog.entry import _ARCH_BY_TYPE

NEXT_TYPES = ("glm4_moe_lite", "glm_moe_dsa", "glm4v_moe")


def _moe(arch: Architecture) -> dict[str, Any]:
    return {
        "moe_intermediate_size": arch.moe_intermediate_size,
        "n_routed_experts": arch.num_routed_experts,
        "n_shared_experts": arch.num_shared_experts,
        "num_experts_per_tok": arch.experts_per_token,
        "first_k_dense_replace": arch.first_dense_layers,
        "n_group": 1,
        "topk_group": 1,
        "norm_topk_prob": True,
        "topk_method": "noaux_tc",
        "scoring_func": "sigmoid",
    }


def _common(arch: Architecture) -> dict[str, Any]:
    return {
        "vocab_size": arch.vocab_size,
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.num_layers,
        "num_attention_heads": arch.num_attention_heads,
        "max_position_embeddings": arch.max_context,
        "num_nextn_predict_layers": arch.num_nextn_layers,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000,
        "attention_bias": arch.attention_bias,
        "attention_dropout": 0.0,
        "tie_word_embeddings": arch.tie_word_embeddings,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "initializer_range": 0.02,
    }


def _mla(arch: Architecture) -> dict[str, Any]:
    return {
        "num_key_value_heads": arch.num_attention_heads,  # unused by MLA; as the configs set it
        "q_lora_rank": arch.q_lora_rank or None,
        "kv_lora_rank": arch.kv_lora_rank,
        "qk_rope_head_dim": arch.qk_rope_head_dim,
        "qk_nope_head_dim": arch.qk_nope_head_dim,
        "v_head_dim": arch.v_head_dim,
        "rope_interleave": True,
        "routed_scaling_factor": 1.8,
    }


def next_config(arch: Architecture) -> dict[str, Any]:
    """The config.json of `arch` (one of NEXT_TYPES) with the model's own keys."""
    if arch.model_type not in NEXT_TYPES:
        raise ValueError(f"not one of {NEXT_TYPES}: {arch.model_type}")
    head = {"architectures": [_ARCH_BY_TYPE[arch.model_type]], "model_type": arch.model_type}
    if arch.model_type == "glm4v_moe":
        return {**head, **_vision_language(arch)}
    config = {**head, **_common(arch), **_moe(arch), **_mla(arch)}
    if arch.sparse_attention:
        config.update(
            index_topk=arch.index_topk,
            index_head_dim=arch.index_head_dim,
            index_n_heads=arch.index_n_heads,
            indexer_rope_interleave=True,
        )
    return config


def _vision_language(arch: Architecture) -> dict[str, Any]:
    tower = arch.vision
    assert tower is not None
    text = {
        "model_type": "glm4v_moe_text",
        **_common(arch),
        **_moe(arch),
        "num_key_value_heads": arch.num_kv_heads,
        "head_dim": arch.head_dim,
        "partial_rotary_factor": 0.5,
        "routed_scaling_factor": 1.0,
        "rope_scaling": {"type": "default", "mrope_section": [8, 12, 12]},
    }
    text.pop("num_nextn_predict_layers")
    vision = {
        "model_type": "glm4v_moe_vision",
        "depth": tower.depth,
        "hidden_size": tower.hidden_size,
        "num_heads": tower.num_heads,
        "out_hidden_size": tower.out_hidden_size,
        "intermediate_size": tower.intermediate_size,
        "patch_size": tower.patch_size,
        "spatial_merge_size": tower.spatial_merge_size,
        "temporal_patch_size": tower.temporal_patch_size,
        "image_size": tower.image_size,
        "in_channels": tower.in_channels,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-05,
        "attention_bias": False,
    }
    return {
        "text_config": text,
        "vision_config": vision,
        "image_token_id": 151363,
        "video_token_id": 151364,
        "image_start_token_id": 151339,
        "image_end_token_id": 151340,
        "video_start_token_id": 151341,
        "video_end_token_id": 151342,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
