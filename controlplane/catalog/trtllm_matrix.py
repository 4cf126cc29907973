"""TensorRT-LLM's GLM support matrix: which model, precision and quantisation method it serves.

Sources (NVIDIA/TensorRT-LLM, read through the search index; reference/glm-family.md):
- examples/chatglm/README.md @0ab9d17 "Support Matrix": chatglm_6b FP16, WO, TP (no FMHA,
  SQ, AWQ, FP8); chatglm2_6b FP16, FMHA, WO, SQ, AWQ, FP8, TP; chatglm2_6b_32k the same
  without SQ; no model has PP.
- examples/models/core/glm-4-9b/README.md @0193dbd: glm_4_9b(_chat) FP16, FMHA, WO, TP.
- convert_checkpoint.py asserts `pp_size == 1` ("Pipeline parallelism is not supported.").
- The 32K variants: "max_batch_size * max_beam_width * (max_input_len + max_output_len)
  <= 78398 = 2^31 / (13696 * 2) due to constrain of TensorRT" (examples/chatglm/README.md).
The matrix's FP16 column is the 16-bit dtype: convert_checkpoint.py takes
`--dtype float16|bfloat16`, so BF16 is served the same way.

`trtllm_launch(entry, precision, method)` answers what the engine builds (the quantised
format the capacity model sizes) or a `Refusal` whose reason quotes the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.catalog.models import ModelEntry, Precision
from controlplane.catalog.quant import QuantScheme

LABEL = "TensorRT-LLM 1.2"
MATRIX_SOURCE = "TensorRT-LLM's support matrix (examples/chatglm/README.md)"
# Methods a spec may name for int8 / int4 (`engine.trtllm_quant`).
WEIGHT_ONLY, SMOOTHQUANT, AWQ = "weight_only", "smoothquant", "awq"
# Matrix columns, as the README names them.
COLUMN_NAME = {
    "fp16": "FP16",
    "fmha": "fused multi-head attention (FMHA)",
    "wo": "weight-only quantisation (WO)",
    "sq": "SmoothQuant (SQ)",
    "awq": "AWQ",
    "fp8": "FP8",
    "tp": "tensor parallelism (TP)",
    "pp": "pipeline parallelism (PP)",
}
_CHATGLM2 = frozenset({"fp16", "fmha", "wo", "sq", "awq", "fp8", "tp"})
MATRIX: dict[str, frozenset[str]] = {
    "chatglm-6b": frozenset({"fp16", "wo", "tp"}),
    "chatglm2-6b": _CHATGLM2,
    "chatglm2-6b-32k": _CHATGLM2 - {"sq"},
    "glm-4-9b": frozenset({"fp16", "fmha", "wo", "tp"}),
}
# `--chatglm_version` of convert_checkpoint.py (tensorrt_llm/models/chatglm/config.py).
GLM_VERSION = {
    "chatglm-6b": "chatglm",
    "chatglm2-6b": "chatglm2",
    "chatglm2-6b-32k": "chatglm2",
    "glm-4-9b": "glm4",
}
# TensorRT's 2^31-element limit on the 32K variants' FFN activations (README above).
LONG_CONTEXT_TOKEN_LIMIT = 78398
LONG_CONTEXT_FAMILIES = ("chatglm2-6b-32k",)
AWQ_GROUP = 128  # quantize.py `--awq_block_size` default; one fp16 scale per group
SCHEMES: dict[tuple[Precision, str], QuantScheme] = {
    (Precision.INT8, WEIGHT_ONLY): QuantScheme("trtllm-w8a16", 8, False, 0.0, "per-channel"),
    (Precision.INT4, WEIGHT_ONLY): QuantScheme("trtllm-w4a16", 4, False, 0.0, "per-channel"),
    (Precision.INT8, SMOOTHQUANT): QuantScheme(
        "trtllm-w8a8-sq", 8, False, 0.0, "SmoothQuant, per-channel"
    ),
    (Precision.INT4, AWQ): QuantScheme("trtllm-int4-awq", 4, False, 2 / AWQ_GROUP, "group 128"),
    (Precision.FP8, ""): QuantScheme("trtllm-fp8", 8, True, 0.0, "per-tensor"),
}


@dataclass(frozen=True)
class TrtllmLaunch:
    """What TensorRT-LLM builds for one (model, precision, method)."""

    family: str
    precision: Precision
    method: str  # weight_only / smoothquant / awq for int8 and int4; "" otherwise
    column: str  # the matrix column this needs
    scheme: QuantScheme | None  # what capacity sizes; None: 16-bit


@dataclass(frozen=True)
class MatrixRefusal:
    reason: str
    fix: str


def default_method(precision: Precision) -> str:
    """The method used when the spec names none: weight-only for int8 / int4."""
    return WEIGHT_ONLY if precision in (Precision.INT8, Precision.INT4) else ""


def column_for(precision: Precision, method: str) -> str | None:
    """The matrix column (precision, method) needs; None: the pair makes no sense."""
    if precision in (Precision.FP16, Precision.BF16):
        return "fp16" if not method else None
    if precision is Precision.FP8:
        return "fp8" if not method else None
    if method == WEIGHT_ONLY:
        return "wo"
    if method == SMOOTHQUANT and precision is Precision.INT8:
        return "sq"
    if method == AWQ and precision is Precision.INT4:
        return "awq"
    return None


def offered(family: str) -> list[str]:
    """`precision[/method]` pairs the matrix allows for a family, for "To fix" lines."""
    cols = MATRIX.get(family, frozenset())
    pairs = [("fp16", "fp16"), ("bf16", "fp16"), ("fp8", "fp8")]
    pairs += [("int8 weight_only", "wo"), ("int4 weight_only", "wo")]
    pairs += [("int8 smoothquant", "sq"), ("int4 awq", "awq")]
    return [name for name, col in pairs if col in cols]


def trtllm_launch(
    entry: ModelEntry, precision: Precision, method: str | None
) -> TrtllmLaunch | MatrixRefusal:
    """How TensorRT-LLM serves `entry` at `precision` with `method`, or the matrix's refusal."""
    family = entry.family
    if family not in MATRIX:
        covered = ", ".join(sorted(MATRIX))
        return MatrixRefusal(
            f"{entry.display_name} is not in {MATRIX_SOURCE}: its GLM examples cover {covered}",
            "use `engine: vllm` or `engine: sglang`, or serve one of those models",
        )
    chosen = method if method is not None else default_method(precision)
    column = column_for(precision, chosen)
    if column is None:
        return MatrixRefusal(
            f"`engine.trtllm_quant: {chosen}` does not apply to precision {precision.value}"
            " (weight_only: int8 or int4; smoothquant: int8; awq: int4)",
            "remove `engine.trtllm_quant` or pick a method of that precision",
        )
    if column not in MATRIX[family]:
        allowed = ", ".join(offered(family))
        return MatrixRefusal(
            f"{MATRIX_SOURCE} has no {COLUMN_NAME[column]} for {entry.display_name}",
            f"use one of the matrix's cells for it ({allowed}), or `engine: vllm` / `sglang`",
        )
    scheme = SCHEMES.get((precision, chosen))
    return TrtllmLaunch(family, precision, chosen, column, scheme)


def layout_refusal(
    entry: ModelEntry, pipeline: int, nodes: int, max_num_seqs: int, context: int
) -> MatrixRefusal | None:
    """The matrix's and glmctl's limits on the split and the batch (None: fine)."""
    name = entry.display_name
    if pipeline > 1:
        return MatrixRefusal(
            f"{MATRIX_SOURCE} has no {COLUMN_NAME['pp']} for {name} (convert_checkpoint.py"
            " asserts `pp_size == 1`: 'Pipeline parallelism is not supported.')",
            "set `parallelism.pipeline: 1` and split with `parallelism.tensor` instead",
        )
    if nodes > 1:
        return MatrixRefusal(
            f"{name} on TensorRT-LLM across {nodes} nodes runs under `mpirun` with"
            " `trtllm-llmapi-launch` on every host, which glmctl does not start",
            "fit the replica on one node (these models need at most a few GPUs), or use"
            " `engine: vllm` / `sglang` for multi-node replicas",
        )
    if entry.family in LONG_CONTEXT_FAMILIES and max_num_seqs * context > LONG_CONTEXT_TOKEN_LIMIT:
        return MatrixRefusal(
            f"{name}'s engine build needs max_batch_size x max_seq_len <="
            f" {LONG_CONTEXT_TOKEN_LIMIT} (TensorRT's 2^31-element limit on its FFN activations,"
            f" examples/chatglm/README.md); max_num_seqs {max_num_seqs} x context_length"
            f" {context} = {max_num_seqs * context}",
            f"lower `max_num_seqs` to {max(1, LONG_CONTEXT_TOKEN_LIMIT // context)} or"
            f" `context_length` to {LONG_CONTEXT_TOKEN_LIMIT // max_num_seqs}",
        )
    return None
