"""What a catalog entry is: a servable checkpoint, the precisions, the engines' support.

Split out of `models.py` so that the GLM-4.5 entries (`models.py`) and the later GLM
generations (`glm_next.py`) share one definition without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from controlplane.catalog.architecture import Architecture


class Precision(StrEnum):
    """Weight precision a topology serves at."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"  # block-wise FP8 checkpoints (128 x 128 weight blocks)
    INT8 = "int8"  # weight-only
    INT4 = "int4"  # weight-only


BYTES_PER_VALUE: dict[Precision, float] = {
    Precision.BF16: 2.0,
    Precision.FP16: 2.0,
    Precision.FP8: 1.0,
    Precision.INT8: 1.0,
    Precision.INT4: 0.5,
}

# Block-wise FP8 quantisation block (DeepSeek-V3 / GLM-4.5-FP8 `weight_block_size: [128, 128]`).
FP8_BLOCK = 128


@dataclass(frozen=True)
class SpeculativeSupport:
    """One engine's speculative decoding for a model: how it is asked for, since which
    version, and where that is published."""

    engine: str  # "sglang" | "vllm"
    method: str  # SGLang --speculative-algorithm / vLLM speculative_config.method
    since: str  # first engine version the source names for this model ("": not stated)
    draft_tokens: int  # published draft tokens (SGLang num_draft_tokens, vLLM num_spec_tokens)
    source: str


@dataclass(frozen=True)
class ModelEntry:
    """One servable checkpoint."""

    name: str
    family: str  # entries of one family share an architecture: glm-4.5, glm-4.5-air, ...
    hf_repo: str
    arch: Architecture
    weight_format: Precision  # how the checkpoint stores its weights
    precisions: tuple[Precision, ...]  # what a topology may ask for with this entry
    display_name: str
    chat: bool = True
    reasoning_parser: str | None = None
    tool_parser: str | None = None
    notes: str = ""
    sources: tuple[str, ...] = field(default=(), compare=False)
    hf_architecture: str = ""  # config.json `architectures[0]`; "": the model type's usual one
    speculative_support: tuple[SpeculativeSupport, ...] = field(default=(), compare=False)

    @property
    def has_mtp(self) -> bool:
        return self.arch.num_nextn_layers > 0

    @property
    def accepts_images(self) -> bool:
        """A vision-language checkpoint: chat messages may carry `image_url` parts."""
        return self.arch.vision is not None

    @property
    def architecture(self) -> str:
        """The class name engines look up in their model registries."""
        return self.hf_architecture or _ARCH_BY_TYPE.get(self.arch.model_type, self.arch.model_type)


# config.json `architectures` of the catalog's checkpoints, by model type (their configs:
# GLM-4.5 Glm4MoeForCausalLM; chatglm2-6b, chatglm-6b, glm-4-9b-chat ChatGLMModel with
# custom code; glm-edge GlmForCausalLM; the later generations as transformers registers
# them: glm4_moe_lite, glm_moe_dsa, glm4v_moe).
_ARCH_BY_TYPE = {
    "glm4_moe": "Glm4MoeForCausalLM",
    "chatglm": "ChatGLMModel",
    "glm": "GlmForCausalLM",
    "glm4": "Glm4ForCausalLM",
    "glm4_moe_lite": "Glm4MoeLiteForCausalLM",
    "glm_moe_dsa": "GlmMoeDsaForCausalLM",
    "glm4v_moe": "Glm4vMoeForConditionalGeneration",
}
