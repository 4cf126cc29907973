"""How a quantised checkpoint stores its weights, read from `config.json`'s `quantization_config`.

A `QuantScheme` says how many bits a quantised weight value takes and how many bytes of
scales (and zero points) come with it, per weight value, as the engines load it. The
tensors a checkpoint keeps 16-bit (embedding, lm_head, norms, the MoE router gate) stay
16-bit whatever the scheme; `capacity.weights` sizes them so.

Recognised (the `quant_method` values vLLM and SGLang accept for these formats):
- `fp8` with `weight_block_size: [128, 128]`: block FP8 (DeepSeek-V3, GLM-4.5-FP8, Qwen3-FP8),
  one float32 scale per block;
- `fp8` without a block size: per-tensor FP8, one scale per matrix (negligible);
- `compressed-tensors`: the first config group's `weights` (`num_bits`, `type` float or int,
  `strategy` tensor / channel / group / block, `group_size`, `symmetric`);
- `awq`: 4-bit groups with float16 scales and packed 4-bit zero points;
- `gptq` / `gptq_marlin`: `bits`-bit groups with float16 scales and packed zero points
  (`group_size: -1` is one scale per output channel), plus `g_idx` per input row
  (`capacity.matrices` sizes the per-row and per-column bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCALE_FP32 = 4  # bytes of a float32 scale (block FP8 `weight_scale_inv`)
SCALE_16BIT = 2  # bytes of a float16 / bfloat16 scale (AWQ, GPTQ, compressed-tensors groups)
GPTQ_G_IDX = 4  # bytes of one `g_idx` entry (int32) per input row of a GPTQ matrix


class QuantConfigError(ValueError):
    """A `quantization_config` glmctl cannot size; the message names the field."""


@dataclass(frozen=True)
class QuantScheme:
    """Storage of the quantised linear weights of a checkpoint."""

    method: str  # as config.json names it: fp8, compressed-tensors, awq, gptq
    bits: int  # 8 or 4
    float_weights: bool  # FP8 (True) or integer (False)
    scale_bytes_per_value: float  # scales + zero points per quantised weight value
    detail: str = ""  # e.g. "block 128x128", "group 128", "per-channel"
    row_bytes: float = 0.0  # per input row of each matrix (GPTQ `g_idx`, int32)
    column_bytes: float = 0.0  # per output column (a per-channel scale and zero point)
    block: tuple[int, int] | None = None  # (rows, columns) of a block-scaled format

    @property
    def bytes_per_value(self) -> float:
        return self.bits / 8


def _group_overhead(group_size: int, bits: int, zero_point: bool) -> float:
    """Bytes per value of one 16-bit scale (and a packed zero point) per group."""
    if group_size <= 0:  # one scale per output channel: negligible per value
        return 0.0
    zeros = bits / 8 if zero_point else 0.0
    return (SCALE_16BIT + zeros) / group_size


def _fp8(quant: dict[str, Any]) -> QuantScheme:
    block = quant.get("weight_block_size")
    if block:
        if len(block) != 2 or min(int(b) for b in block) <= 0:
            raise QuantConfigError(f"weight_block_size {block} is not two positive sizes")
        rows, cols = int(block[0]), int(block[1])
        return QuantScheme(
            "fp8", 8, True, SCALE_FP32 / (rows * cols), f"block {rows}x{cols}", block=(rows, cols)
        )
    return QuantScheme("fp8", 8, True, 0.0, "per-tensor")


def _compressed_tensors(quant: dict[str, Any]) -> QuantScheme:
    groups = quant.get("config_groups") or {}
    weights = next(
        (g.get("weights") for g in groups.values() if isinstance(g, dict) and g.get("weights")),
        None,
    )
    if not isinstance(weights, dict):
        raise QuantConfigError("config_groups has no group with a `weights` entry")
    bits = int(weights.get("num_bits", 0))
    if bits not in (4, 8):
        raise QuantConfigError(f"weights.num_bits {bits} (glmctl sizes 4- and 8-bit weights)")
    is_float = str(weights.get("type", "int")).lower() == "float"
    strategy = str(weights.get("strategy", "tensor")).lower()
    if strategy == "block":
        rows, cols = (int(b) for b in weights.get("block_structure") or (128, 128))
        return QuantScheme(
            "compressed-tensors",
            bits,
            is_float,
            SCALE_FP32 / (rows * cols),
            f"block {rows}x{cols}",
            block=(rows, cols),
        )
    if strategy in ("group", "tensor_group"):
        size = int(weights.get("group_size") or 128)
        zero = not bool(weights.get("symmetric", True))
        return QuantScheme(
            "compressed-tensors", bits, is_float, _group_overhead(size, bits, zero), f"group {size}"
        )
    return QuantScheme("compressed-tensors", bits, is_float, 0.0, f"per-{strategy}")


def _awq(quant: dict[str, Any]) -> QuantScheme:
    bits = int(quant.get("bits", quant.get("w_bit", 4)))
    size = int(quant.get("group_size", quant.get("q_group_size", 128)))
    zero = bool(quant.get("zero_point", True))
    return QuantScheme("awq", bits, False, _group_overhead(size, bits, zero), f"group {size}")


def _gptq(quant: dict[str, Any]) -> QuantScheme:
    bits = int(quant.get("bits", 4))
    size = int(quant.get("group_size", 128))
    # GPTQ checkpoints ship packed qzeros whether or not `sym` is set, and `g_idx` (the
    # group of each input row, int32) whether or not `desc_act` reorders them.
    if size <= 0:  # `scales` [1, out] float16 and `qzeros` [1, out / pack] per matrix
        return QuantScheme(
            "gptq", bits, False, 0.0, "per-channel", GPTQ_G_IDX, SCALE_16BIT + bits / 8
        )
    return QuantScheme(
        "gptq", bits, False, _group_overhead(size, bits, True), f"group {size}", GPTQ_G_IDX
    )


_READERS = {
    "fp8": _fp8,
    "compressed-tensors": _compressed_tensors,
    "compressed_tensors": _compressed_tensors,
    "awq": _awq,
    "awq_marlin": _awq,
    "gptq": _gptq,
    "gptq_marlin": _gptq,
}


def scheme_from_config(quant: dict[str, Any] | None) -> QuantScheme | None:
    """The `QuantScheme` of a `quantization_config` (None: an unquantised checkpoint).

    Raises QuantConfigError for a method or a field glmctl cannot size.
    """
    if not quant:
        return None
    method = str(quant.get("quant_method", "")).lower()
    reader = _READERS.get(method)
    if reader is None:
        if quant.get("bits") in (4, 8):  # older GPTQ exports name no method
            return _gptq(quant)
        known = ", ".join(sorted(_READERS))
        raise QuantConfigError(f"quant_method `{method or '(missing)'}` (glmctl reads {known})")
    scheme = reader(quant)
    if scheme.bits not in (4, 8):
        raise QuantConfigError(f"{scheme.bits}-bit weights (glmctl sizes 4- and 8-bit weights)")
    return scheme
