"""The tiny GLM-4.5 checkpoint generator: config, tensor names, sizes, safetensors bytes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from controlplane.catalog import find_model
from controlplane.local.tiny_model import (
    TINY_MODEL_NAME,
    checkpoint_key,
    is_local_model,
    tiny_config,
)
from controlplane.local.tiny_writer import random_weights, save_safetensors, weight_shapes

ENTRY = find_model(TINY_MODEL_NAME)
assert ENTRY is not None
ARCH = ENTRY.arch
CONFIG = tiny_config(ARCH)


def test_config_is_glm45_shaped() -> None:
    assert CONFIG["architectures"] == ["Glm4MoeForCausalLM"]
    assert CONFIG["model_type"] == "glm4_moe"
    assert CONFIG["num_nextn_predict_layers"] == ARCH.num_nextn_layers == 1
    assert CONFIG["first_k_dense_replace"] == ARCH.first_dense_layers
    assert CONFIG["head_dim"] >= 32  # vLLM's CPU attention kernels need it
    assert CONFIG["n_shared_experts"] == 1 and CONFIG["n_routed_experts"] > 1


def test_experts_are_saved_one_by_one_as_zai_checkpoints_do() -> None:
    names = set(weight_shapes(CONFIG))
    moe_layer = ARCH.first_dense_layers
    for expert in range(ARCH.num_routed_experts):
        for proj in ("gate_proj", "up_proj", "down_proj"):
            assert f"model.layers.{moe_layer}.mlp.experts.{expert}.{proj}.weight" in names
    assert f"model.layers.{moe_layer}.mlp.shared_experts.down_proj.weight" in names
    assert f"model.layers.{moe_layer}.mlp.gate.e_score_correction_bias" in names
    assert "model.layers.0.mlp.gate_proj.weight" in names  # the dense first layer
    assert not any(".experts.gate_up_proj" in n for n in names)  # no fused 3-D layout


def test_mtp_layer_follows_the_last_decoder_layer() -> None:
    mtp = ARCH.num_layers
    names = set(weight_shapes(CONFIG))
    for part in ("enorm", "hnorm", "eh_proj", "shared_head.norm"):
        assert f"model.layers.{mtp}.{part}.weight" in names
    assert f"model.layers.{mtp}.mlp.experts.0.up_proj.weight" in names
    assert not any(n.startswith(f"model.layers.{mtp + 1}.") for n in names)


def test_parameter_count_matches_the_catalog_derivation() -> None:
    shapes = weight_shapes(CONFIG)
    total = sum(int(np.prod(s)) for s in shapes.values())
    # The router's correction bias is a buffer, not counted by Architecture.total_params.
    bias = sum(int(np.prod(s)) for n, s in shapes.items() if n.endswith("correction_bias"))
    assert total - bias == ARCH.total_params(include_nextn=True)


def test_safetensors_file_reads_back(tmp_path: Path) -> None:
    tensors = {"a.weight": np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)}
    tensors["gate.e_score_correction_bias"] = np.array([0.25, 0.0], np.float32)
    path = tmp_path / "model.safetensors"
    save_safetensors(path, tensors)
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    assert size % 8 == 0
    weight = header["a.weight"]
    assert weight["dtype"] == "BF16" and weight["shape"] == [2, 2]
    begin, end = weight["data_offsets"]
    bits = np.frombuffer(data[8 + size + begin : 8 + size + end], "<u2").astype(np.uint32)
    assert (bits << 16).view(np.float32).tolist() == [1.0, -2.0, 0.5, 3.0]
    assert header["gate.e_score_correction_bias"]["dtype"] == "F32"


def test_random_weights_are_deterministic_with_unit_norms() -> None:
    first, second = random_weights(CONFIG), random_weights(CONFIG)
    assert all(np.array_equal(first[n], second[n]) for n in first)
    assert np.all(first["model.norm.weight"] == 1.0)


def test_cache_key_follows_the_config() -> None:
    assert checkpoint_key(CONFIG) == checkpoint_key(tiny_config(ARCH))
    assert checkpoint_key({**CONFIG, "hidden_size": 128}) != checkpoint_key(CONFIG)
    assert is_local_model(TINY_MODEL_NAME) and not is_local_model("glm-4.5")
