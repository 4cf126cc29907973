"""Which engine serves which model, and how each precision reaches the engine: one truth.

`quant_launch(entry, precision, engine)` says, for a checkpoint and a requested precision,
what the engine loads (the checkpoint, and the `--quantization` value that makes it load
that format) and the `QuantScheme` the capacity model must size, or why that engine
cannot serve it. `engine_support(entry, engine)` says whether an engine implements the
model's architecture at all. Each engine's facts are one `FormatRule` (`VLLM_FORMATS`,
`SGLANG_FORMATS`, ...) that its profile in controlplane/engines/ names; the functions here
ask the rule instead of comparing engine kinds. Engine names are plain strings ("vllm",
"sglang", "sim") so the catalog stays below the spec and engine packages.

Facts, read from the pinned engines' installed sources (`~/.cache/glmctl/venvs/`):
- vLLM 0.32.0 `--quantization` choices: vllm/model_executor/layers/quantization/__init__.py
  (`awq`, `gptq`, `compressed-tensors`, `fp8`, ... and the online shorthands of
  vllm/config/quantization.py `_ONLINE_SHORTHANDS`). `fp8_per_tensor` quantises every
  linear layer at load, one scale per matrix (`kFp8StaticTensorSym`).
  `int8_per_channel_weight_only` defines only a `moe` spec ("linear stays unquantized"):
  on a dense model it quantises nothing, so it is never used for int8 here.
- SGLang 0.5.23 `--quantization` choices: sglang/srt/arg_groups/choices.py. `fp8` on a
  16-bit checkpoint quantises linear layers at load (layers/quantization/fp8.py: per-channel
  or per-tensor scales, `is_checkpoint_fp8_serialized` false); `w8a8_int8` loads stored
  `weight_scale` tensors (layers/quantization/w8a8_int8.py), so int8 needs a checkpoint.
- Neither engine quantises 16-bit weights to int4 at load in a format glmctl sizes: int4
  needs a stored AWQ or GPTQ checkpoint.
- vLLM registry (vllm/model_executor/models/registry.py): `ChatGLMModel` and
  `ChatGLMForConditionalGeneration` (ChatGLM2/3, glm-4-9b-chat), `Glm4ForCausalLM`,
  `Glm4MoeForCausalLM`; `GlmForCausalLM` (GLM-Edge) only through the Transformers backend.
- SGLang models (sglang/srt/models/): chatglm.py (`ChatGLMModel`, "Adapted from
  THUDM/ChatGLM2-6B"), glm4.py (`Glm4ForCausalLM`), glm4_moe.py; other architectures fall
  back to the Transformers backend (model_loader/utils.py `resolve_transformers_arch`).
- ChatGLM-6B (v1) shares `ChatGLMModel` and `model_type: chatglm` with ChatGLM2 but has a
  GELU MLP, LayerNorm and 2D rotary positions: both engines' ChatGLM code implements the
  ChatGLM2 layout only (reference/glm-family.md: vLLM lists ChatGLM2/3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controlplane.catalog import trtllm_matrix
from controlplane.catalog.architecture import MlpKind
from controlplane.catalog.models import ModelEntry, Precision
from controlplane.catalog.quant import QuantScheme

SIXTEEN_BIT = (Precision.BF16, Precision.FP16)
NATIVE, TRANSFORMERS = "native", "Transformers backend"


@dataclass(frozen=True)
class FormatRule:
    """What one engine loads: the model architectures it implements, the `--quantization`
    names it accepts, what it quantises at load. The engine's profile (controlplane/engines/)
    names its object; the catalog sits below engines/ and finds the same one by the engine's
    name (`format_rule`; tests/unit/engines/test_registry.py checks that they agree)."""

    engine: str  # the engine's name (its `EngineKind` value)
    label: str  # for people, with the version the facts are read from
    # How it implements an architecture (`architectures[0]` of config.json): NATIVE or
    # TRANSFORMERS. Empty: it serves any shape (the simulator).
    archs: Mapping[str, str] = field(default_factory=dict)
    # The method names of a stored checkpoint's `quantization_config` its `--quantization`
    # accepts (the choices files above).
    stored_flags: Mapping[str, str] = field(default_factory=dict)
    # Online FP8 from a 16-bit checkpoint: the flag and what it stores per weight value.
    online_fp8: tuple[str, QuantScheme] | None = None
    no_online_int8: str = ""  # why it quantises nothing to int8 at load ("": int4's reason)
    matrix: bool = False  # it converts the checkpoint itself; its support matrix answers
    sized_as: str = ""  # loads nothing: sized as this engine loads the checkpoint, no flag


_GPU_STORED = {
    "awq": "awq",
    "gptq": "gptq",
    "compressed-tensors": "compressed-tensors",
    "fp8": "fp8",
}
VLLM_FORMATS = FormatRule(
    "vllm",
    "vLLM 0.32",
    archs={
        "ChatGLMModel": NATIVE,
        "ChatGLMForConditionalGeneration": NATIVE,
        "Glm4ForCausalLM": NATIVE,
        "Glm4MoeForCausalLM": NATIVE,
        "GlmForCausalLM": TRANSFORMERS,
    },
    stored_flags=_GPU_STORED,
    online_fp8=(
        "fp8_per_tensor",
        QuantScheme("fp8", 8, True, 0.0, "per-tensor, quantised at load"),
    ),
    no_online_int8=(
        "vLLM 0.32's only online int8 (`--quantization int8_per_channel_weight_only`)"
        " quantises MoE experts only and leaves linear layers 16-bit, so a dense model"
        " would load 16-bit weights"
    ),
)
SGLANG_FORMATS = FormatRule(
    "sglang",
    "SGLang 0.5.23",
    archs={
        "ChatGLMModel": NATIVE,
        "Glm4ForCausalLM": NATIVE,
        "Glm4MoeForCausalLM": NATIVE,
        "GlmForCausalLM": TRANSFORMERS,
    },
    stored_flags=_GPU_STORED,
    # Per-channel (CUTLASS) or per-tensor: at most one fp32 scale per output row, < 0.1%.
    online_fp8=("fp8", QuantScheme("fp8", 8, True, 0.0, "per-channel, quantised at load")),
    no_online_int8=(
        "SGLang 0.5.23 quantises nothing to int8 at load (`w8a8_int8` reads the stored"
        " per-channel scales of a SmoothQuant W8A8 checkpoint)"
    ),
)
TRTLLM_FORMATS = FormatRule("trtllm", trtllm_matrix.LABEL, matrix=True)
SIM_FORMATS = FormatRule("sim", "the simulator", sized_as=SGLANG_FORMATS.engine)
FORMAT_RULES = (VLLM_FORMATS, SGLANG_FORMATS, TRTLLM_FORMATS, SIM_FORMATS)
_BY_ENGINE = {rule.engine: rule for rule in FORMAT_RULES}


def format_rule(engine: str) -> FormatRule:
    """The rule of the engine named `engine`; an unknown name is sized as the simulator is."""
    return _BY_ENGINE.get(engine, SIM_FORMATS)


# ChatGLM's own `quantization_bit` repositories: custom kernels in modeling_chatglm.py.
CHATGLM_OWN_INT = {"chatglm2-6b": "THUDM/chatglm2-6b-int4", "chatglm-6b": "THUDM/chatglm-6b-int4"}


@dataclass(frozen=True)
class QuantLaunch:
    """What the engine loads for one precision: the checkpoint, the flag, the sizing."""

    precision: Precision
    checkpoint: str  # repository or local folder
    flag: str | None  # the engine's `--quantization` value; None: load as stored
    scheme: QuantScheme | None  # what capacity sizes; None: the catalog's default rule
    detail: str  # for people: "FP16 as stored", "FP8 per-tensor, quantised at load", ...


@dataclass(frozen=True)
class Refusal:
    """Why an engine cannot serve a model (at a precision), and what to do instead."""

    reason: str
    fix: str


def is_chatglm_v1(entry: ModelEntry) -> bool:
    """ChatGLM-6B's first layout: `model_type: chatglm` with a GELU (ungated) MLP."""
    return entry.arch.model_type == "chatglm" and entry.arch.mlp is MlpKind.PLAIN


def how_served(entry: ModelEntry, engine: str) -> str | None:
    """`native` or `Transformers backend` for the GLM architectures the engine's rule lists;
    None for others (a local config's architecture: the engine decides when it loads)."""
    return format_rule(engine).archs.get(entry.architecture)


def engine_support(entry: ModelEntry, engine: str) -> Refusal | None:
    """None when `engine` serves the model's architecture, else the reason it does not.

    Only what the pinned sources settle is refused (ChatGLM-6B v1); an architecture outside
    the rule's `archs` passes and the engine decides when it loads.
    """
    rule = format_rule(engine)
    if rule.matrix:
        if entry.family in trtllm_matrix.MATRIX:
            return None
        answer = trtllm_matrix.trtllm_launch(entry, entry.weight_format, None)
        assert isinstance(answer, trtllm_matrix.MatrixRefusal)
        return Refusal(answer.reason, answer.fix)
    if not rule.archs:
        return None  # the simulator serves any shape
    if is_chatglm_v1(entry):
        return Refusal(
            f"{rule.label} does not serve {entry.display_name}: its ChatGLM code implements the"
            " ChatGLM2/3 layout (gated MLP, RMSNorm, 1D rotary), while ChatGLM-6B v1 has a GELU"
            " MLP, LayerNorm and 2D rotary positions under the same `ChatGLMModel` name;"
            " neither vLLM nor SGLang serves it",
            "serve `model: chatglm2-6b` on vllm or sglang, or use `engine: sim` to rehearse"
            " (ChatGLM-6B v1 runs on MNN, lyraChatGLM or transformers, outside glmctl)",
        )
    return None


def quant_launch(
    entry: ModelEntry, precision: Precision, engine: str, method: str | None = None
) -> QuantLaunch | Refusal:
    """How `engine` loads `entry` at `precision`, or why it cannot.

    `method` is TensorRT-LLM's int8 / int4 method (`engine.trtllm_quant`); TensorRT-LLM
    converts the 16-bit checkpoint itself, so its answer comes from its support matrix.

    `entry` is the checkpoint `checkpoint_for` picked. A checkpoint that stores the
    precision is loaded as stored (with its own method as the flag when config.json names
    one); a 16-bit checkpoint asked for another precision is quantised at load where the
    engine can (FP8), else refused with the engine's reason.
    """
    repo = entry.hf_repo
    rule = format_rule(engine)
    if rule.matrix:
        return _trtllm_launch(entry, precision, method)
    if rule.sized_as:  # the simulator: sized as SGLang loads it, no flags
        mimic = quant_launch(entry, precision, rule.sized_as)
        scheme = entry.arch.quant if isinstance(mimic, Refusal) else mimic.scheme
        return QuantLaunch(precision, repo, None, scheme, f"{precision.value} (sim)")
    scheme = entry.arch.quant
    if precision is entry.weight_format or (
        precision in SIXTEEN_BIT and entry.weight_format in SIXTEEN_BIT
    ):
        if scheme is None:
            return QuantLaunch(precision, repo, None, None, f"{precision.value} as stored")
        flag = rule.stored_flags.get(scheme.method)
        if flag is None:
            return Refusal(
                f"{rule.label} has no `--quantization` for `{scheme.method}`",
                "quantise to AWQ, GPTQ, compressed-tensors or FP8 instead",
            )
        return QuantLaunch(precision, repo, flag, scheme, f"{scheme.method} {scheme.detail}")
    if entry.weight_format not in SIXTEEN_BIT:
        return Refusal(
            f"the checkpoint stores {entry.weight_format.value} weights and cannot be served"
            f" at {precision.value}",
            f"set `precision: {entry.weight_format.value}`",
        )
    if precision is Precision.FP8 and rule.online_fp8 is not None:
        flag, online = rule.online_fp8
        return QuantLaunch(precision, repo, flag, online, f"FP8 {online.detail}")
    return _no_online_int(entry, precision, rule)


def _no_online_int(entry: ModelEntry, precision: Precision, rule: FormatRule) -> Refusal:
    """int8 / int4 from a 16-bit repository: each engine's reason, and the way out."""
    if precision is Precision.INT8 and rule.no_online_int8:
        why = rule.no_online_int8
    else:
        why = f"{rule.label} does not quantise 16-bit weights to {precision.value} at load"
    if entry.family in CHATGLM_OWN_INT:
        why += (
            "; ChatGLM's own `quantization_bit` repositories"
            f" (e.g. {CHATGLM_OWN_INT[entry.family]})"
            " need the custom kernels of their modeling_chatglm.py, which neither vLLM nor"
            " SGLang loads"
        )
    stored = "AWQ or GPTQ int4" if precision is Precision.INT4 else "GPTQ 8-bit or W8A8 int8"
    return Refusal(
        f"{entry.display_name} has no verified {precision.value} checkpoint for"
        f" {rule.label}: {why}",
        f"quantise it yourself ({stored}, e.g. with llm-compressor or AutoAWQ) and give the"
        " folder as `model_config: path/to/checkpoint`, set `precision: fp8` (quantised at"
        " load), or use `engine: sim` to size it for another runtime",
    )


def _trtllm_launch(
    entry: ModelEntry, precision: Precision, method: str | None
) -> QuantLaunch | Refusal:
    """TensorRT-LLM quantises the 16-bit checkpoint at conversion, per its matrix."""
    answer = trtllm_matrix.trtllm_launch(entry, precision, method)
    if isinstance(answer, trtllm_matrix.MatrixRefusal):
        return Refusal(answer.reason, answer.fix)
    if entry.weight_format not in SIXTEEN_BIT:
        return Refusal(
            f"TensorRT-LLM converts a 16-bit checkpoint; {entry.name} stores"
            f" {entry.weight_format.value} weights",
            "serve the family's 16-bit checkpoint",
        )
    how = f"{answer.method or precision.value} ({answer.column}), built by TensorRT-LLM"
    return QuantLaunch(precision, entry.hf_repo, None, answer.scheme, how)
