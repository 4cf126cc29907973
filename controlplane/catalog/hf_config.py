"""Read a local Hugging Face `config.json` into an `Architecture` (an explicit load step).

Supported families: dense Llama-style (llama, mistral, qwen2, qwen3, glm), Mixtral,
Qwen3-MoE / Qwen2-MoE, DeepSeek-V3 / V2 (MLA), GLM-4 MoE (GLM-4.5/4.6/4.7), GLM-4.7-Flash
(`glm4_moe_lite`, MLA), GLM-5 (`glm_moe_dsa`, MLA + sparse-attention indexer) and ChatGLM.
The vision-language `glm4v_moe` nests its language model in `text_config`; sizing such a
local config is not supported (the catalog's glm-4.5v / glm-4.6v entries are).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from controlplane.catalog.architecture import Architecture, AttentionKind, MlpKind
from controlplane.catalog.models import ModelEntry, Precision
from controlplane.catalog.quant import QuantConfigError, QuantScheme, scheme_from_config
from controlplane.errors import UserError

DENSE_TYPES = {"llama", "mistral", "qwen2", "qwen3", "glm", "gemma", "phi3"}
MOE_TYPES = {"mixtral", "qwen3_moe", "qwen2_moe", "glm4_moe", "deepseek_v3", "deepseek_v2"}
MLA_TYPES = {"deepseek_v3", "deepseek_v2", "glm4_moe_lite", "glm_moe_dsa"}  # GLM-4.7-Flash, GLM-5
MOE_TYPES |= MLA_TYPES
SUPPORTED = sorted(DENSE_TYPES | MOE_TYPES | {"chatglm"})


def _get(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return default


def architecture_from_config(cfg: dict[str, Any], origin: str = "config.json") -> Architecture:
    """Build an `Architecture` from a parsed config; raises UserError on what it cannot size."""
    model_type = str(cfg.get("model_type", "")).lower()
    if model_type not in SUPPORTED:
        raise UserError(
            f"{origin}: model_type `{model_type or '(missing)'}` is not one glmctl can size.",
            fix=f"use a catalog model (`glmctl models`) or a config of: {', '.join(SUPPORTED)}.",
        )
    _check_counts(cfg, origin)
    try:
        arch = _build(cfg, model_type, origin)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise UserError(
            f"{origin}: a `{model_type}` config is missing or has a bad value for {exc}.",
            fix="point `model_config` at the model's own unmodified config.json.",
        ) from exc
    _check_shape(arch, origin)
    return arch


# Fields that, when present, must be whole numbers of at least 1 (or 0 where allowed).
_POSITIVE = (
    "hidden_size",
    "num_hidden_layers",
    "num_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "padded_vocab_size",
    "max_position_embeddings",
    "seq_length",
)
_NON_NEGATIVE = (
    "intermediate_size",
    "moe_intermediate_size",
    "n_routed_experts",
    "num_experts",
    "num_local_experts",
    "n_shared_experts",
    "num_experts_per_tok",
    "first_k_dense_replace",
    "num_nextn_predict_layers",
    "multi_query_group_num",
    "kv_channels",
    "ffn_hidden_size",
)
_FIX = "point `model_config` at the model's own unmodified config.json."


def _check_counts(cfg: dict[str, Any], origin: str) -> None:
    """Counts that must be positive (or not negative) are, before any arithmetic on them."""
    for key in _POSITIVE + _NON_NEGATIVE:
        value = cfg.get(key)
        if value is None:
            continue
        least = 1 if key in _POSITIVE else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            need = "a whole number of at least 1" if least else "a whole number, 0 or more"
            raise UserError(f"{origin}: `{key}` is {value!r}; it must be {need}.", fix=_FIX)


def _check_shape(arch: Architecture, origin: str) -> None:
    """Relations between the counts that every engine relies on."""
    problems = []
    if arch.attention is AttentionKind.GQA and arch.num_attention_heads % arch.num_kv_heads:
        problems.append(
            f"{arch.num_attention_heads} attention heads are not a multiple of"
            f" {arch.num_kv_heads} key/value heads"
        )
    if arch.num_kv_heads > arch.num_attention_heads:
        problems.append(f"{arch.num_kv_heads} key/value heads exceed the attention heads")
    if arch.is_moe and not 0 < arch.experts_per_token <= arch.num_routed_experts:
        problems.append(
            f"{arch.experts_per_token} experts per token with {arch.num_routed_experts} experts"
        )
    if arch.is_moe and arch.moe_intermediate_size <= 0:
        problems.append("an MoE model with no `moe_intermediate_size`")
    if arch.first_dense_layers > arch.num_layers:
        problems.append(
            f"{arch.first_dense_layers} dense layers of {arch.num_layers} layers in all"
        )
    if problems:
        raise UserError(f"{origin}: " + "; ".join(problems) + ".", fix=_FIX)


def _build(cfg: dict[str, Any], model_type: str, origin: str) -> Architecture:
    if model_type == "chatglm":
        return _chatglm(cfg, origin)
    common = _common(cfg, model_type, origin)
    if model_type in DENSE_TYPES:
        return Architecture(**common)
    if model_type == "mixtral":
        return Architecture(
            **{**common, "intermediate_size": 0},
            moe_intermediate_size=int(cfg["intermediate_size"]),
            num_routed_experts=int(cfg["num_local_experts"]),
            experts_per_token=int(cfg["num_experts_per_tok"]),
        )
    if model_type in ("qwen3_moe", "qwen2_moe"):
        return _qwen_moe(cfg, common)
    if model_type == "glm4_moe":
        return Architecture(**common, **_deepseek_style_moe(cfg))
    return _deepseek_mla(cfg, common)


def _chatglm(cfg: dict[str, Any], origin: str) -> Architecture:
    hidden = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    multi_query = bool(cfg.get("multi_query_attention"))
    return Architecture(
        model_type="chatglm",
        hidden_size=hidden,
        num_layers=int(_get(cfg, "num_layers", "num_hidden_layers")),
        num_attention_heads=heads,
        num_kv_heads=int(cfg.get("multi_query_group_num", heads)) if multi_query else heads,
        head_dim=int(cfg.get("kv_channels", hidden // heads)),
        intermediate_size=int(
            _get(cfg, "ffn_hidden_size", "inner_hidden_size", default=4 * hidden)
        ),
        vocab_size=int(_get(cfg, "padded_vocab_size", "vocab_size")),
        max_context=int(_get(cfg, "seq_length", "max_sequence_length", default=2048)),
        attention_bias=bool(cfg.get("add_qkv_bias", True)),
        # ChatGLM-6B v1 (`inner_hidden_size`, `position_encoding_2d`): a GELU MLP, 2 matrices.
        mlp=MlpKind.PLAIN if "inner_hidden_size" in cfg else MlpKind.GATED,
        sources=(origin,),
    )


def _common(cfg: dict[str, Any], model_type: str, origin: str) -> dict[str, Any]:
    """Fields every Llama-style config names the same way (transformers conventions)."""
    hidden = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    return {
        "model_type": model_type,
        "hidden_size": hidden,
        "num_layers": int(_get(cfg, "num_hidden_layers", "num_layers")),
        "num_attention_heads": heads,
        "num_kv_heads": int(_get(cfg, "num_key_value_heads", default=heads)),
        "head_dim": int(_get(cfg, "head_dim", default=hidden // heads)),
        "intermediate_size": int(_get(cfg, "intermediate_size", default=0)),
        "vocab_size": int(cfg["vocab_size"]),
        "max_context": int(_get(cfg, "max_position_embeddings", default=4096)),
        "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "attention_bias": bool(cfg.get("attention_bias", model_type == "qwen2")),
        "sources": (origin,),
    }


def _qwen_moe(cfg: dict[str, Any], common: dict[str, Any]) -> Architecture:
    shared = int(cfg.get("shared_expert_intermediate_size", 0) or 0)
    moe_inter = int(cfg["moe_intermediate_size"])
    return Architecture(
        **common,
        moe_intermediate_size=moe_inter,
        num_routed_experts=int(cfg["num_experts"]),
        # Qwen2-MoE's shared expert is wider than a routed one; count it in routed units.
        num_shared_experts=round(shared / moe_inter) if shared else 0,
        experts_per_token=int(cfg["num_experts_per_tok"]),
        first_dense_layers=len(cfg.get("mlp_only_layers") or []),
    )


def _deepseek_style_moe(cfg: dict[str, Any]) -> dict[str, Any]:
    """MoE fields GLM-4.5 and DeepSeek-V3 configs share (`n_routed_experts`, ...)."""
    return {
        "moe_intermediate_size": int(cfg["moe_intermediate_size"]),
        "num_routed_experts": int(cfg["n_routed_experts"]),
        "num_shared_experts": int(cfg.get("n_shared_experts", 0) or 0),
        "experts_per_token": int(cfg["num_experts_per_tok"]),
        "first_dense_layers": int(cfg.get("first_k_dense_replace", 0)),
        "num_nextn_layers": int(cfg.get("num_nextn_predict_layers", 0) or 0),
    }


def _deepseek_mla(cfg: dict[str, Any], common: dict[str, Any]) -> Architecture:
    """DeepSeek-V3 / V2: multi-head latent attention caches one latent per token."""
    rope, nope = int(cfg["qk_rope_head_dim"]), int(cfg["qk_nope_head_dim"])
    return Architecture(
        **{**common, "num_kv_heads": 1, "head_dim": nope + rope},
        **_deepseek_style_moe(cfg),
        attention=AttentionKind.MLA,
        q_lora_rank=int(cfg.get("q_lora_rank") or 0),
        kv_lora_rank=int(cfg["kv_lora_rank"]),
        qk_rope_head_dim=rope,
        qk_nope_head_dim=nope,
        v_head_dim=int(cfg["v_head_dim"]),
        index_n_heads=int(cfg.get("index_n_heads") or 0),
        index_head_dim=int(cfg.get("index_head_dim") or 0),
        index_topk=int(cfg.get("index_topk") or 0),
    )


def weight_format(
    cfg: dict[str, Any], origin: str = "config.json"
) -> tuple[Precision, QuantScheme | None]:
    """The precision a checkpoint serves at and its quantisation scheme (None: unquantised).

    `quantization_config` decides (fp8 block or per-tensor, compressed-tensors, AWQ, GPTQ);
    without one, `torch_dtype` (or transformers 5's `dtype`) float16 is FP16, else BF16.
    """
    try:
        scheme = scheme_from_config(cfg.get("quantization_config"))
    except (QuantConfigError, TypeError, ValueError) as exc:
        raise UserError(
            f"{origin}: quantization_config: {exc}.",
            fix="size the unquantised checkpoint (`precision: bf16`), or report the format.",
        ) from exc
    if scheme is not None:
        if scheme.float_weights:
            return Precision.FP8, scheme
        return (Precision.INT4 if scheme.bits == 4 else Precision.INT8), scheme
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "").lower()
    return (Precision.FP16 if dtype == "float16" else Precision.BF16), None


def load_model_config(path: Path) -> ModelEntry:
    """Read `path` (a config.json or a folder holding one) into an uncatalogued ModelEntry."""
    file = path / "config.json" if path.is_dir() else path
    cfg = _read_config_json(file)
    fmt, scheme = weight_format(cfg, origin=str(file))
    arch = replace(architecture_from_config(cfg, origin=str(file)), quant=scheme)
    # A quantised checkpoint serves only as stored; a 16-bit one at any precision.
    precisions = (
        (fmt,)
        if scheme is not None
        else (Precision.BF16, Precision.FP16, Precision.FP8, Precision.INT8, Precision.INT4)
    )
    is_glm45 = arch.model_type in ("glm4_moe", "glm4_moe_lite", "glm_moe_dsa")
    name = str(cfg.get("_name_or_path") or file.parent.name or "local-model").split("/")[-1]
    return ModelEntry(
        name=name.lower(),
        family=f"local:{file}",
        hf_repo=str(file.parent),
        arch=arch,
        weight_format=fmt,
        precisions=precisions,
        display_name=f"{name} (local config)",
        reasoning_parser="glm45" if is_glm45 else None,
        tool_parser=(
            ("glm47" if arch.model_type != "glm4_moe" else "glm45") if is_glm45 else None
        ),  # GLM-4.7-Flash and GLM-5 call tools in GLM-4.7's format (catalog/glm_next.py)
        sources=(str(file),),
        hf_architecture=str((cfg.get("architectures") or [""])[0]),
    )


def _read_config_json(file: Path) -> dict[str, Any]:
    """The JSON object in `file`; a missing, unreadable or malformed file is a UserError."""
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise UserError(
            f"model_config `{file}` does not exist.",
            fix="give the path of a Hugging Face config.json (or its folder).",
        ) from exc
    except PermissionError as exc:
        raise UserError(
            f"model_config `{file}` cannot be read (permission denied).",
            fix="check the file's permissions.",
        ) from exc
    except json.JSONDecodeError as exc:
        raise UserError(
            f"model_config `{file}` is not valid JSON: {exc.msg} (line {exc.lineno}).",
            fix="point at an unmodified config.json.",
        ) from exc
    except UnicodeDecodeError as exc:
        raise UserError(
            f"model_config `{file}` is not a UTF-8 text file.",
            fix="point at an unmodified config.json.",
        ) from exc
    if not isinstance(cfg, dict):
        raise UserError(
            f"model_config `{file}` holds no JSON object.",
            fix="point at an unmodified config.json.",
        )
    return cfg
