"""The model catalog: GLM checkpoints we know, each architecture number with its source.

A catalog entry is a checkpoint (a Hugging Face repository) of one architecture in one
weight format. GLM-4.5 and GLM-4.5-FP8 share an `Architecture`; they differ in
`weight_format`. Parameter counts are derived (see `Architecture.total_params`).
"""

from __future__ import annotations

from typing import Any

from controlplane.catalog.entry import (  # re-exported: what an entry is
    BYTES_PER_VALUE,
    FP8_BLOCK,
    ModelEntry,
    Precision,
    SpeculativeSupport,
)
from controlplane.catalog.glm_next import GLM46_SPECULATIVE, NEXT_MODELS
from controlplane.catalog.shapes import (  # re-exported: the catalog's architectures
    CHATGLM2_6B,
    CHATGLM2_6B_32K,
    CHATGLM_6B,
    GLM4_9B,
    GLM45,
    GLM45_AIR,
    GLM45_TINY,
    GLM46,
    GLM_EDGE_1_5B,
    GLM_EDGE_4B,
)

_GLM45_PARSERS: dict[str, Any] = {"reasoning_parser": "glm45", "tool_parser": "glm45"}
_CARD = "zai-org/GLM-4.5 model card"
# The smaller models' 16-bit repositories: FP8 is quantised at load by the engine; int8 /
# int4 are sized here (edge runtimes, local quantised checkpoints) and refused by vLLM and
# SGLang for these repositories (catalog/formats.py says why).
_SMALL_PRECISIONS = (
    Precision.FP16,
    Precision.BF16,
    Precision.FP8,
    Precision.INT8,
    Precision.INT4,
)

MODELS: tuple[ModelEntry, ...] = (
    ModelEntry(
        "glm-4.5",
        "glm-4.5",
        "zai-org/GLM-4.5",
        GLM45,
        Precision.BF16,
        (Precision.BF16,),
        "GLM-4.5 (355B-A32B)",
        sources=(_CARD,),
        **_GLM45_PARSERS,
    ),
    ModelEntry(
        "glm-4.5-fp8",
        "glm-4.5",
        "zai-org/GLM-4.5-FP8",
        GLM45,
        Precision.FP8,
        (Precision.FP8,),
        "GLM-4.5-FP8",
        sources=(_CARD,),
        **_GLM45_PARSERS,
    ),
    ModelEntry(
        "glm-4.5-base",
        "glm-4.5",
        "zai-org/GLM-4.5-Base",
        GLM45,
        Precision.BF16,
        (Precision.BF16,),
        "GLM-4.5-Base",
        chat=False,
        sources=(_CARD,),
    ),
    ModelEntry(
        "glm-4.5-air",
        "glm-4.5-air",
        "zai-org/GLM-4.5-Air",
        GLM45_AIR,
        Precision.BF16,
        (Precision.BF16,),
        "GLM-4.5-Air (106B-A12B)",
        sources=(_CARD,),
        **_GLM45_PARSERS,
    ),
    ModelEntry(
        "glm-4.5-air-fp8",
        "glm-4.5-air",
        "zai-org/GLM-4.5-Air-FP8",
        GLM45_AIR,
        Precision.FP8,
        (Precision.FP8,),
        "GLM-4.5-Air-FP8",
        sources=(_CARD,),
        **_GLM45_PARSERS,
    ),
    ModelEntry(
        "glm-4.5-air-base",
        "glm-4.5-air",
        "zai-org/GLM-4.5-Air-Base",
        GLM45_AIR,
        Precision.BF16,
        (Precision.BF16,),
        "GLM-4.5-Air-Base",
        chat=False,
        sources=(_CARD,),
    ),
    ModelEntry(
        "glm-4.6",
        "glm-4.6",
        "zai-org/GLM-4.6",
        GLM46,
        Precision.BF16,
        (Precision.BF16,),
        "GLM-4.6 (355B-A32B, 200K)",
        sources=(*GLM46.sources, "zai-org/GLM-4.6"),
        speculative_support=GLM46_SPECULATIVE,
        **_GLM45_PARSERS,
    ),
    ModelEntry(
        "glm-4.6-fp8",
        "glm-4.6",
        "zai-org/GLM-4.6-FP8",
        GLM46,
        Precision.FP8,
        (Precision.FP8,),
        "GLM-4.6-FP8",
        sources=(*GLM46.sources, "zai-org/GLM-4.6-FP8"),
        speculative_support=GLM46_SPECULATIVE,
        **_GLM45_PARSERS,
    ),
    ModelEntry(
        "chatglm2-6b",
        "chatglm2-6b",
        "THUDM/chatglm2-6b",
        CHATGLM2_6B,
        Precision.FP16,
        _SMALL_PRECISIONS,
        "ChatGLM2-6B",
        sources=("THUDM/chatglm2-6b",),
    ),
    ModelEntry(
        "chatglm2-6b-32k",
        "chatglm2-6b-32k",
        "THUDM/chatglm2-6b-32k",
        CHATGLM2_6B_32K,
        Precision.FP16,
        _SMALL_PRECISIONS,
        "ChatGLM2-6B-32K",
        sources=("THUDM/chatglm2-6b-32k",),
    ),
    ModelEntry(
        "chatglm-6b",
        "chatglm-6b",
        "THUDM/chatglm-6b",
        CHATGLM_6B,
        Precision.FP16,
        _SMALL_PRECISIONS,
        "ChatGLM-6B",
        sources=("THUDM/chatglm-6b",),
    ),
    ModelEntry(
        "glm-4-9b-chat",
        "glm-4-9b",
        "THUDM/glm-4-9b-chat",
        GLM4_9B,
        Precision.BF16,
        _SMALL_PRECISIONS,
        "GLM-4-9B-Chat",
        sources=("THUDM/glm-4-9b-chat",),
    ),
    ModelEntry(
        "glm-edge-1.5b-chat",
        "glm-edge-1.5b",
        "THUDM/glm-edge-1.5b-chat",
        GLM_EDGE_1_5B,
        Precision.BF16,
        _SMALL_PRECISIONS,
        "GLM-Edge-1.5B-Chat",
        sources=("THUDM/glm-edge-1.5b-chat",),
    ),
    ModelEntry(
        "glm-edge-4b-chat",
        "glm-edge-4b",
        "THUDM/glm-edge-4b-chat",
        GLM_EDGE_4B,
        Precision.BF16,
        _SMALL_PRECISIONS,
        "GLM-Edge-4B-Chat",
        sources=("THUDM/glm-edge-4b-chat",),
    ),
    ModelEntry(
        "glm-4.5-tiny",
        "glm-4.5-tiny",
        "glmctl/glm-4.5-tiny-random",
        GLM45_TINY,
        Precision.BF16,
        (Precision.BF16,),
        "GLM-4.5 tiny random (CPU tests)",
        notes="random weights, generated locally by controlplane.local.tiny_model",
        sources=("controlplane/local/tiny_model.py",),
        **_GLM45_PARSERS,
    ),
    *NEXT_MODELS,
)

_BY_NAME = {m.name: m for m in MODELS}
_ALIASES = {
    "glm4.5": "glm-4.5",
    "glm45": "glm-4.5",
    "glm-4.5-air": "glm-4.5-air",
    "glm45-air": "glm-4.5-air",
    "glm4.5-air": "glm-4.5-air",
    "glm-4-9b": "glm-4-9b-chat",
    "glm-edge-1.5b": "glm-edge-1.5b-chat",
    "glm-edge-4b": "glm-edge-4b-chat",
    "glm4.6": "glm-4.6",
    "glm4.7": "glm-4.7",
    "glm47": "glm-4.7",
    "glm5": "glm-5",
    "glm-5.0": "glm-5",
    "glm-4.5-v": "glm-4.5v",
    "glm-4.6-v": "glm-4.6v",
}


def model_names() -> list[str]:
    return [m.name for m in MODELS]


def find_model(name: str) -> ModelEntry | None:
    """Catalog entry by name (case-insensitive, a few common aliases); None if unknown."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _BY_NAME:
        return _BY_NAME[key]
    for entry in MODELS:  # a Hugging Face repository id works too
        if entry.hf_repo.lower() == key:
            return entry
    return None


def family_precisions(entry: ModelEntry) -> tuple[Precision, ...]:
    """Every precision some checkpoint of `entry`'s line (same family, chat or base) offers."""
    found: list[Precision] = list(entry.precisions)
    for other in MODELS:
        if other.family == entry.family and other.chat == entry.chat:
            found += [p for p in other.precisions if p not in found]
    return tuple(found)


def checkpoint_for(entry: ModelEntry, precision: Precision) -> ModelEntry | None:
    """The entry of the same family that serves `precision`.

    `glm-4.5` at fp8 is the `glm-4.5-fp8` checkpoint: a user names the model and the
    precision, the catalog picks the repository. Base models have no FP8 sibling.
    """
    if precision in entry.precisions:
        return entry
    for other in MODELS:
        same_line = other.family == entry.family and other.chat == entry.chat
        if same_line and precision in other.precisions:
            return other
    return None


__all__ = [
    "BYTES_PER_VALUE",
    "FP8_BLOCK",
    "MODELS",
    "ModelEntry",
    "Precision",
    "SpeculativeSupport",
    "checkpoint_for",
    "family_precisions",
    "find_model",
    "model_names",
]
