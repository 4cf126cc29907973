"""The capacity model's weights equal the tensor bytes of a checkpoint written in the format.

A tiny ChatGLM2-shaped checkpoint is written as a real safetensors file (8-byte header
length, JSON header of dtype / shape / data offsets, zero-filled data) with the tensor
names and shapes the format defines, read back from its header, and compared with
`checkpoint_bytes` of the config the same folder holds. The tensor layouts come from the
formats, not from glmctl's sizing code:
- AWQ (AutoAWQ GEMM, vLLM awq.py `create_weights`): qweight int32 [in, out / 8], qzeros
  int32 [in / group, out / 8], scales float16 [in / group, out];
- GPTQ (AutoGPTQ, vLLM gptq.py `create_weights`): qweight int32 [in * bits / 32, out], qzeros
  int32 [groups, out * bits / 32], scales float16 [groups, out] (groups: in / group, or 1
  per channel with `group_size: -1`), g_idx int32 [in];
- FP8 block (vLLM fp8.py, GLM-4.5-FP8): weight float8 [out, in], weight_scale_inv float32
  [ceil(out / 128), ceil(in / 128)];
- unquantised tensors (embedding, output_layer, norms, the QKV bias) float16.
ChatGLM2's tensors (THUDM/chatglm2-6b modeling_chatglm.py): fused query_key_value with
bias, dense, fused dense_h_to_4h (gate and up), dense_4h_to_h, two RMSNorms per layer,
final_layernorm, word embeddings and an untied output_layer.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from controlplane.capacity.weights import checkpoint_bytes
from controlplane.catalog import Precision
from controlplane.catalog.hf_config import load_model_config

DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "I32": 4, "F8_E4M3": 1}
TINY_CHATGLM2: dict[str, Any] = {
    "architectures": ["ChatGLMModel"],
    "model_type": "chatglm",
    "num_layers": 2,
    "padded_vocab_size": 1024,
    "hidden_size": 256,
    "ffn_hidden_size": 512,
    "kv_channels": 64,
    "num_attention_heads": 4,
    "seq_length": 2048,
    "multi_query_attention": True,
    "multi_query_group_num": 2,
    "add_qkv_bias": True,
    "rmsnorm": True,
    "torch_dtype": "float16",
}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """A safetensors file of zero-filled tensors {name: (dtype, shape)}."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def tensor_bytes(path: Path) -> int:
    """Sum of the tensors' bytes a safetensors file declares (checked against its length)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    total = sum(e["data_offsets"][1] - e["data_offsets"][0] for e in header.values())
    assert 8 + length + total == len(data)
    return total


def _linears(cfg: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(in, out) of each linear of one ChatGLM2 layer."""
    h, heads, kv, d = (cfg[k] for k in ("hidden_size", "num_attention_heads",
                                        "multi_query_group_num", "kv_channels"))  # fmt: skip
    ffn = cfg["ffn_hidden_size"]
    return {
        "self_attention.query_key_value": (h, (heads + 2 * kv) * d),
        "self_attention.dense": (heads * d, h),
        "mlp.dense_h_to_4h": (h, 2 * ffn),
        "mlp.dense_4h_to_h": (ffn, h),
    }


def _unquantised(cfg: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...]]]:
    h, vocab = cfg["hidden_size"], cfg["padded_vocab_size"]
    qkv_out = _linears(cfg)["self_attention.query_key_value"][1]
    out = {
        "transformer.embedding.word_embeddings.weight": ("F16", (vocab, h)),
        "transformer.output_layer.weight": ("F16", (vocab, h)),
        "transformer.encoder.final_layernorm.weight": ("F16", (h,)),
    }
    for i in range(cfg["num_layers"]):
        layer = f"transformer.encoder.layers.{i}"
        out[f"{layer}.input_layernorm.weight"] = ("F16", (h,))
        out[f"{layer}.post_attention_layernorm.weight"] = ("F16", (h,))
        out[f"{layer}.self_attention.query_key_value.bias"] = ("F16", (qkv_out,))
    return out


def awq_tensors(cfg: dict[str, Any], group: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    tensors = _unquantised(cfg)
    for i in range(cfg["num_layers"]):
        for name, (n_in, n_out) in _linears(cfg).items():
            base = f"transformer.encoder.layers.{i}.{name}"
            tensors[f"{base}.qweight"] = ("I32", (n_in, n_out // 8))
            tensors[f"{base}.qzeros"] = ("I32", (n_in // group, n_out // 8))
            tensors[f"{base}.scales"] = ("F16", (n_in // group, n_out))
    return tensors


def gptq_tensors(
    cfg: dict[str, Any], bits: int, group: int, g_idx: bool = True
) -> dict[str, tuple[str, tuple[int, ...]]]:
    tensors = _unquantised(cfg)
    for i in range(cfg["num_layers"]):
        for name, (n_in, n_out) in _linears(cfg).items():
            base = f"transformer.encoder.layers.{i}.{name}"
            groups = n_in // group if group > 0 else 1
            tensors[f"{base}.qweight"] = ("I32", (n_in * bits // 32, n_out))
            tensors[f"{base}.qzeros"] = ("I32", (groups, n_out * bits // 32))
            tensors[f"{base}.scales"] = ("F16", (groups, n_out))
            if g_idx:
                tensors[f"{base}.g_idx"] = ("I32", (n_in,))
    return tensors


def fp8_block_tensors(cfg: dict[str, Any], block: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    tensors = _unquantised(cfg)
    for i in range(cfg["num_layers"]):
        for name, (n_in, n_out) in _linears(cfg).items():
            base = f"transformer.encoder.layers.{i}.{name}"
            tensors[f"{base}.weight"] = ("F8_E4M3", (n_out, n_in))
            scales = (math.ceil(n_out / block), math.ceil(n_in / block))
            tensors[f"{base}.weight_scale_inv"] = ("F32", scales)
    return tensors


def _checkpoint(tmp_path: Path, quant: dict[str, Any], tensors: dict[str, Any]) -> tuple[int, Any]:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**TINY_CHATGLM2, "quantization_config": quant}))
    write_safetensors(folder / "model.safetensors", tensors)
    return tensor_bytes(folder / "model.safetensors"), load_model_config(folder)


@pytest.mark.parametrize("group", [32, 64, 128])
def test_awq_int4_weights_equal_the_checkpoint_tensor_bytes(tmp_path: Path, group: int) -> None:
    quant = {"quant_method": "awq", "bits": 4, "group_size": group, "zero_point": True}
    on_disk, entry = _checkpoint(tmp_path, quant, awq_tensors(TINY_CHATGLM2, group))
    assert entry.weight_format is Precision.INT4
    assert checkpoint_bytes(entry.arch, Precision.INT4) == pytest.approx(on_disk, rel=1e-12)


@pytest.mark.parametrize(("bits", "group"), [(4, 128), (4, 64), (8, 128), (4, -1), (8, -1)])
def test_gptq_weights_equal_the_checkpoint_tensor_bytes(
    tmp_path: Path, bits: int, group: int
) -> None:
    quant = {"quant_method": "gptq", "bits": bits, "group_size": group, "desc_act": False}
    on_disk, entry = _checkpoint(tmp_path, quant, gptq_tensors(TINY_CHATGLM2, bits, group))
    precision = Precision.INT4 if bits == 4 else Precision.INT8
    assert entry.weight_format is precision
    assert checkpoint_bytes(entry.arch, precision) == pytest.approx(on_disk, rel=1e-12)


def test_gptq_g_idx_is_sized(tmp_path: Path) -> None:
    # Without g_idx the tensors are 4 bytes per input row fewer: the model must see it.
    quant = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    on_disk, entry = _checkpoint(tmp_path, quant, gptq_tensors(TINY_CHATGLM2, 4, 128, False))
    rows = TINY_CHATGLM2["num_layers"] * sum(n_in for n_in, _ in _linears(TINY_CHATGLM2).values())
    assert checkpoint_bytes(entry.arch, Precision.INT4) == pytest.approx(on_disk + 4 * rows)


def test_fp8_block_weights_equal_the_checkpoint_tensor_bytes(tmp_path: Path) -> None:
    # 128 divides every width of the tiny shape, so ceil() adds nothing the model omits.
    quant = {"quant_method": "fp8", "weight_block_size": [128, 128]}
    on_disk, entry = _checkpoint(tmp_path, quant, fp8_block_tensors(TINY_CHATGLM2, 128))
    assert entry.weight_format is Precision.FP8
    assert checkpoint_bytes(entry.arch, Precision.FP8) == pytest.approx(on_disk, rel=1e-12)


def test_a_wrong_layout_is_caught(tmp_path: Path) -> None:
    # The same AWQ checkpoint declared with another group size: the sums must differ.
    quant = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}
    on_disk, entry = _checkpoint(tmp_path, quant, awq_tensors(TINY_CHATGLM2, 32))
    assert checkpoint_bytes(entry.arch, Precision.INT4) != pytest.approx(on_disk, rel=1e-3)
