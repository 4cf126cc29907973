"""`load_model_config`: a local config.json sized by the same code as the catalog.

Expected totals are the parameter counts each model's authors publish (model cards,
papers), not numbers computed here; the tolerance is a fraction of a percent.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from controlplane.catalog import AttentionKind, Precision, find_model
from controlplane.catalog.hf_config import load_model_config
from controlplane.errors import UserError
from tests.unit.catalog import configs


def write_config(tmp_path: Path, folder: str, config: dict[str, Any]) -> Path:
    path = tmp_path / folder
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(
    ("folder", "config", "published_b", "tolerance"),
    [
        # Meta Llama 3 model card: 8B (8.03B in the safetensors index).
        ("Meta-Llama-3-8B", configs.LLAMA_3_8B, 8.03, 0.002),
        # Qwen3-30B-A3B model card: 30.5B total.
        ("Qwen3-30B-A3B", configs.QWEN3_30B_A3B, 30.5, 0.003),
        # Mistral's Mixtral 8x7B announcement: 46.7B total.
        ("Mixtral-8x7B-v0.1", configs.MIXTRAL_8X7B, 46.7, 0.002),
        # DeepSeek-V3 model card: 671B main model weights (685B with the MTP module).
        ("DeepSeek-V3", configs.DEEPSEEK_V3, 671.0, 0.002),
        # shared/reference/model-configs.md: GLM-4.5-Air 106.9B without its MTP layer.
        ("GLM-4.5-Air", configs.GLM_45_AIR, 106.9, 0.002),
    ],
)
def test_derived_totals_match_published_counts(
    tmp_path: Path, folder: str, config: dict[str, Any], published_b: float, tolerance: float
) -> None:
    entry = load_model_config(write_config(tmp_path, folder, config))
    total = entry.arch.total_params(include_nextn=False) / 1e9
    assert total == pytest.approx(published_b, rel=tolerance)
    assert entry.name == folder.lower()


@pytest.mark.parametrize(
    ("config", "published_active_b"),
    [
        (configs.QWEN3_30B_A3B, 3.3),  # "3.3B activated"
        (configs.MIXTRAL_8X7B, 12.9),  # "12.9B active parameters per token"
        (configs.DEEPSEEK_V3, 37.0),  # "37B activated for each token"
    ],
)
def test_active_counts_match_published_when_the_embedding_table_is_included(
    tmp_path: Path, config: dict[str, Any], published_active_b: float
) -> None:
    # Published "activated" counts include the whole input embedding table;
    # `active_params` counts only the row a token reads, so add the rest back.
    arch = load_model_config(write_config(tmp_path, "m", config)).arch
    embedding_rest = arch.embedding_params() - arch.hidden_size
    assert (arch.active_params() + embedding_rest) / 1e9 == pytest.approx(
        published_active_b, rel=0.02
    )


def test_deepseek_v3_with_mtp_module(tmp_path: Path) -> None:
    arch = load_model_config(write_config(tmp_path, "DeepSeek-V3", configs.DEEPSEEK_V3)).arch
    assert arch.attention is AttentionKind.MLA
    assert arch.num_nextn_layers == 1
    # DeepSeek's 685B counts the MTP module with its own copies of the embedding and the
    # output head (the checkpoint stores them again in layer 61); glmctl shares them.
    with_copies = arch.total_params() + 2 * arch.embedding_params()
    assert with_copies / 1e9 == pytest.approx(685, rel=0.003)


def test_deepseek_v3_is_an_fp8_checkpoint_with_mla_kv(tmp_path: Path) -> None:
    entry = load_model_config(write_config(tmp_path, "DeepSeek-V3", configs.DEEPSEEK_V3))
    assert entry.weight_format is Precision.FP8
    assert entry.precisions == (Precision.FP8,)
    cfg = configs.DEEPSEEK_V3
    latent = cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"]  # one latent + rope key per layer
    assert entry.arch.kv_bytes_per_token(2) == latent * cfg["num_hidden_layers"] * 2
    assert entry.arch.kv_bytes_per_token(2, tensor_parallel=8) == entry.arch.kv_bytes_per_token(2)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("glm-4.5-air", configs.GLM_45_AIR),
        ("chatglm2-6b", configs.CHATGLM2_6B),
        ("glm-edge-1.5b-chat", configs.GLM_EDGE_1_5B),
    ],
)
def test_a_published_config_gives_the_catalog_architecture(
    tmp_path: Path, name: str, config: dict[str, Any]
) -> None:
    local = load_model_config(write_config(tmp_path, name, config))
    catalog = find_model(name)
    assert catalog is not None
    differing = [
        f.name
        for f in fields(catalog.arch)
        if f.name != "sources" and getattr(local.arch, f.name) != getattr(catalog.arch, f.name)
    ]
    assert differing == []
    glm45 = config["model_type"] == "glm4_moe"
    assert local.tool_parser == ("glm45" if glm45 else None)


def test_gqa_kv_bytes_from_the_config(tmp_path: Path) -> None:
    cfg = configs.LLAMA_3_8B
    arch = load_model_config(write_config(tmp_path, "llama", cfg)).arch
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    per_token = 2 * cfg["num_key_value_heads"] * head_dim * cfg["num_hidden_layers"] * 2
    assert arch.kv_bytes_per_token(2) == per_token
    assert arch.kv_bytes_per_token(2, tensor_parallel=8) == per_token / 8
    # More ranks than KV heads: each rank still holds one (replicated) head.
    assert arch.kv_bytes_per_token(2, tensor_parallel=16) == per_token / 8


def test_a_config_file_path_works_as_well_as_its_folder(tmp_path: Path) -> None:
    folder = write_config(tmp_path, "Mixtral-8x7B-v0.1", configs.MIXTRAL_8X7B)
    by_folder = load_model_config(folder)
    by_file = load_model_config(folder / "config.json")
    assert by_folder.arch == by_file.arch


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "no JSON object"),
        ('{"model_type": "bert"}', "model_type `bert`"),
        ('{"model_type": "llama", "hidden_size": 4096}', "missing or has a bad value"),
    ],
)
def test_bad_configs_are_user_errors(tmp_path: Path, content: str, says: str) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(UserError) as caught:
        load_model_config(tmp_path / "config.json")
    assert says in str(caught.value)
    assert "To fix:" in str(caught.value)


def test_missing_config_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_model_config(tmp_path / "nothing" / "config.json")


def test_a_binary_config_is_a_user_error_with_a_fix(tmp_path: Path) -> None:
    file = tmp_path / "config.json"
    file.write_bytes(b"\xf8\xff\x00{}")
    with pytest.raises(UserError, match="not a UTF-8 text file") as caught:
        load_model_config(tmp_path)
    assert caught.value.fix


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"num_attention_heads": 0}, "`num_attention_heads` is 0"),
        ({"num_hidden_layers": -32}, "`num_hidden_layers` is -32"),
        ({"num_key_value_heads": 0}, "`num_key_value_heads` is 0"),
        ({"hidden_size": "4096"}, "`hidden_size` is '4096'"),
        ({"vocab_size": 0}, "`vocab_size` is 0"),
        ({"num_key_value_heads": 5}, "not a multiple of 5 key/value heads"),
    ],
)
def test_impossible_counts_get_a_fix_it_error(
    tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    """Issue 11: zero heads gave a traceback, negative layers "at most -32 layers"."""
    with pytest.raises(UserError) as err:
        load_model_config(write_config(tmp_path, "bad", {**configs.LLAMA_3_8B, **change}))
    assert named in err.value.message and err.value.fix


def test_moe_config_with_more_active_than_routed_experts_is_refused(tmp_path: Path) -> None:
    bad = {**configs.QWEN3_30B_A3B, "num_experts_per_tok": 256}
    with pytest.raises(UserError) as err:
        load_model_config(write_config(tmp_path, "bad-moe", bad))
    assert "256 experts per token with 128 experts" in err.value.message


FP8_BLOCK_QUANT = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}
FP8_TENSOR_QUANT = {"quant_method": "fp8", "activation_scheme": "static"}
# RedHatAI "FP8-dynamic" checkpoints (llm-compressor): per-channel FP8 weights.
CT_FP8_QUANT = {
    "quant_method": "compressed-tensors",
    "format": "float-quantized",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True},
            "input_activations": {"num_bits": 8, "type": "float", "dynamic": True},
        }
    },
    "ignore": ["lm_head"],
}
CT_W4A16_QUANT = {
    "quant_method": "compressed-tensors",
    "format": "pack-quantized",
    "config_groups": {
        "group_0": {
            "weights": {
                "num_bits": 4,
                "type": "int",
                "strategy": "group",
                "group_size": 128,
                "symmetric": True,
            }
        }
    },
}
AWQ_QUANT = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}
GPTQ_QUANT = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}
GPTQ8_QUANT = {"quant_method": "gptq", "bits": 8, "group_size": -1}


@pytest.mark.parametrize(
    ("quant", "precision", "bytes_per_param", "row_bytes", "column_bytes"),
    [
        (FP8_BLOCK_QUANT, Precision.FP8, 1 + 4 / 128**2, 0, 0),
        (FP8_TENSOR_QUANT, Precision.FP8, 1.0, 0, 0),
        (CT_FP8_QUANT, Precision.FP8, 1.0, 0, 0),
        (CT_W4A16_QUANT, Precision.INT4, 0.5 + 2 / 128, 0, 0),
        (AWQ_QUANT, Precision.INT4, 0.5 + 2.5 / 128, 0, 0),
        # GPTQ: g_idx int32 per input row; per-channel: float16 scale + 8-bit zero per column.
        (GPTQ_QUANT, Precision.INT4, 0.5 + 2.5 / 128, 4, 0),
        (GPTQ8_QUANT, Precision.INT8, 1.0, 4, 3),
    ],
)
def test_quantized_checkpoints_are_sized_as_loaded(
    tmp_path: Path,
    quant: dict[str, Any],
    precision: Precision,
    bytes_per_param: float,
    row_bytes: int,
    column_bytes: int,
) -> None:
    """Weights by `quantization_config`: the quantised linears at their bits plus scales, the
    embedding, lm_head and norms 16-bit (compressed-tensors FP8 was read as BF16: 2x), and
    the per-row / per-column bytes of Llama-3-8B's fused matrices (QKV, o, gate-up, down)."""
    from controlplane.capacity.weights import checkpoint_bytes

    entry = load_model_config(
        write_config(tmp_path, "q", {**configs.LLAMA_3_8B, "quantization_config": quant})
    )
    assert entry.weight_format is precision and entry.precisions == (precision,)
    arch = entry.arch
    sixteen_bit = arch.embedding_params() + arch.lm_head_params()
    sixteen_bit += arch.num_layers * arch.norm_params() + arch.hidden_size
    linear = arch.total_params(include_nextn=False) - sixteen_bit
    h, inter, kv = 4096, 14336, 8 * 128  # Llama-3-8B's config.json
    rows = h + h + h + inter
    columns = (h + 2 * kv) + h + 2 * inter + h
    edges = arch.num_layers * (rows * row_bytes + columns * column_bytes)
    expected = linear * bytes_per_param + sixteen_bit * 2 + edges
    assert checkpoint_bytes(arch, precision) == pytest.approx(expected, rel=1e-9)
    bf16 = checkpoint_bytes(arch, Precision.BF16)
    assert checkpoint_bytes(arch, precision) < 0.62 * bf16  # never sized as 16-bit


def test_unknown_quant_method_is_a_user_error(tmp_path: Path) -> None:
    cfg = {**configs.LLAMA_3_8B, "quantization_config": {"quant_method": "mystery"}}
    with pytest.raises(UserError) as err:
        load_model_config(write_config(tmp_path, "m", cfg))
    assert "quant_method `mystery`" in err.value.message
