"""What spec validation knows of each engine, as one `SpecRules` object per engine.

Defaults and checks that differ by engine (the version a command line targets, how MTP
drafts, TensorRT-LLM's matrix limits) live here instead of in branches of `resolve`. The
engine's profile (controlplane/engines/registry.py) names its object; spec sits below
engines/ and finds the same object by kind (tests/unit/engines/test_registry.py checks
that they agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controlplane.catalog import GpuType, ModelEntry, Precision, trtllm_matrix
from controlplane.spec.messages import Problem
from controlplane.spec.models import (
    EngineKind,
    KvCacheDtype,
    SpeculativeAlgorithm,
    TopologySpec,
    TrtllmQuant,
)

Check = Callable[[TopologySpec, ModelEntry, GpuType, list[Problem]], None]


@dataclass(frozen=True)
class Speculative:
    """How an engine drafts with the model's MTP layer, and its defaults."""

    algorithm: SpeculativeAlgorithm  # chosen when the spec names none
    num_steps: int
    eagle_topk: int
    # num_draft_tokens counts the root token too (SGLang's EAGLE worker: steps x topk + 1);
    # vLLM's MTP drafts `num_steps` tokens.
    extra_draft: int
    draft_counts_topk: bool

    def default_draft(self, steps: int, topk: int) -> int:
        return steps * (topk if self.draft_counts_topk else 1) + self.extra_draft

    def draft_limit(self, steps: int, topk: int) -> int:
        return steps * topk + self.extra_draft


# The model card's MTP settings (GLM-4.5 README: 3 steps, top-1, 4 draft tokens).
CARD_SPECULATIVE = Speculative(SpeculativeAlgorithm.EAGLE, 3, 1, 1, True)
# vLLM's GLM-4.5 recipe drafts one token through its MTP method.
VLLM_SPECULATIVE = Speculative(SpeculativeAlgorithm.MTP, 1, 1, 0, False)


@dataclass(frozen=True)
class SpecRules:
    """One engine's defaults and checks at spec validation."""

    engine: EngineKind
    default_version: str  # the version the command builder targets (engines/ profiles)
    speculative: Speculative = CARD_SPECULATIVE
    mimics: EngineKind | None = None  # default `simulation.flavor` (None: the engine itself)
    takes_trtllm_quant: bool = False  # `engine.trtllm_quant` means something to it
    check: Check | None = None  # extra checks once the rest resolved without problems


def _check_trtllm(
    s: TopologySpec, entry: ModelEntry, gpu: GpuType, problems: list[Problem]
) -> None:
    """TensorRT-LLM's matrix limits on the split and batch, and the KV dtypes its
    conversion path can build (FP8 KV only through quantize.py: precision fp8 or awq)."""
    assert s.gpus.nodes is not None and s.context_length is not None
    refused = trtllm_matrix.layout_refusal(
        entry, s.parallelism.pipeline, s.gpus.nodes, s.max_num_seqs, s.context_length
    )
    if refused is not None:
        problems.append(Problem(("engine",), refused.reason + ".", refused.fix + "."))
    if s.gpus.type.upper() == "CPU":
        problems.append(
            Problem(
                ("gpus", "type"),
                "TensorRT-LLM builds and runs engines on NVIDIA GPUs only.",
                "name a GPU type, or serve on the CPU with `engine: vllm`.",
            )
        )
    fp8 = s.precision is Precision.FP8 or s.kv_cache_dtype is KvCacheDtype.FP8
    if fp8 and not gpu.supports_fp8 and gpu.name.upper() != "CPU":
        problems.append(
            Problem(
                ("precision",),
                f"TensorRT-LLM's FP8 engines need FP8 tensor cores (Ada, Hopper or newer);"
                f" {gpu.display_name} has none.",
                "set `precision: int8` (weight-only) on this GPU, or use an FP8 GPU.",
            )
        )
    method = s.engine.trtllm_quant
    through_quantize = s.precision is Precision.FP8 or method is TrtllmQuant.AWQ
    if s.kv_cache_dtype is KvCacheDtype.FP8 and not through_quantize:
        problems.append(
            Problem(
                ("kv_cache_dtype",),
                "TensorRT-LLM's convert_checkpoint.py builds no FP8 KV cache (only"
                " `--int8_kv_cache`); FP8 KV comes from quantize.py with precision fp8 or AWQ.",
                "set `kv_cache_dtype: auto`, or `precision: fp8`.",
            )
        )


# Versions: shared/reference/real-engines-on-cpu.md; TensorRT-LLM 1.2.0rc2 (engines/trtllm.py).
SGLANG_SPEC = SpecRules(EngineKind.SGLANG, "0.5.23")
VLLM_SPEC = SpecRules(EngineKind.VLLM, "0.32.0", speculative=VLLM_SPECULATIVE)
TRTLLM_SPEC = SpecRules(EngineKind.TRTLLM, "1.2.0rc2", takes_trtllm_quant=True, check=_check_trtllm)
# The simulator mimics SGLang's API unless `simulation.flavor` says otherwise.
SIM_SPEC = SpecRules(EngineKind.SIM, "0.1.0", mimics=EngineKind.SGLANG)
SPEC_RULES = (SGLANG_SPEC, VLLM_SPEC, TRTLLM_SPEC, SIM_SPEC)
_BY_ENGINE = {rules.engine: rules for rules in SPEC_RULES}


def spec_rules(engine: EngineKind) -> SpecRules:
    """The rules of `engine` (every `EngineKind` has one)."""
    return _BY_ENGINE[engine]
