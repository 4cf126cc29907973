"""Catalog entries of the GLM generations after GLM-4.5, named as their Hugging Face
repositories in lower case (`glm-4.7-fp8` is zai-org/GLM-4.7-FP8).

Parsers: GLM-4.7, GLM-4.7-Flash and GLM-5 use the `glm47` tool-call parser and the `glm45`
reasoning parser (SGLang docs basic_usage/glm45.html: "For GLM-4.7, --tool-call-parser
should be set to glm47"; vLLM recipes GLM/GLM5.html serve GLM-5 with `--tool-call-parser
glm47 --reasoning-parser glm45`); GLM-4.6 keeps `glm45`. The vision models use `glm45` for
both (vLLM recipes GLM/GLM-V: GLM-4.5V served as GLM-4.5-Air); GLM-4.6V's parser names were
not verifiable here and follow GLM-4.5V.
"""

from __future__ import annotations

from typing import Any

from controlplane.catalog.entry import ModelEntry, Precision, SpeculativeSupport
from controlplane.catalog.shapes import GLM46
from controlplane.catalog.shapes_next import GLM5, GLM45V, GLM46V, GLM47, GLM47_FLASH

_SGLANG_DOC = "sgl-project SGLang docs basic_usage/glm45.html (Launch GLM-4.5 / 4.6 / 4.7)"
_GLM47_CARD = "zai-org/GLM-4.7 README @26f32ade25482d46a9cbfc253f1c04f718d3245f (vLLM: TP 4, MTP 1)"
_VLLM_GLM5 = "vLLM recipes GLM/GLM5.html and recipes.vllm.ai/zai-org/GLM-5.1 (vLLM 0.19.0+)"

_EAGLE_SGLANG = SpeculativeSupport("sglang", "EAGLE", "", 4, _SGLANG_DOC)
_MTP_VLLM_47 = SpeculativeSupport("vllm", "mtp", "", 1, _GLM47_CARD)
_MTP_VLLM_5 = SpeculativeSupport("vllm", "mtp", "0.19.0", 1, _VLLM_GLM5)

_GLM45_PARSERS: dict[str, Any] = {"reasoning_parser": "glm45", "tool_parser": "glm45"}
_GLM47_PARSERS: dict[str, Any] = {"reasoning_parser": "glm45", "tool_parser": "glm47"}


def _pair(
    name: str,
    repo: str,
    arch: Any,
    display: str,
    parsers: dict[str, Any],
    speculative: tuple[SpeculativeSupport, ...] = (),
    fp8: bool = True,
) -> tuple[ModelEntry, ...]:
    """The BF16 checkpoint and (when published) its `-FP8` sibling, one family."""
    entries = [
        ModelEntry(
            name,
            name,
            repo,
            arch,
            Precision.BF16,
            (Precision.BF16,),
            display,
            sources=(*arch.sources, repo),
            speculative_support=speculative,
            **parsers,
        )
    ]
    if fp8:
        entries.append(
            ModelEntry(
                f"{name}-fp8",
                name,
                f"{repo}-FP8",
                arch,
                Precision.FP8,
                (Precision.FP8,),
                f"{display.split(' (')[0]}-FP8",
                sources=(*arch.sources, f"{repo}-FP8"),
                speculative_support=speculative,
                **parsers,
            )
        )
    return tuple(entries)


GLM46_SPECULATIVE = (_EAGLE_SGLANG, SpeculativeSupport("vllm", "mtp", "", 1, _GLM47_CARD))

NEXT_MODELS: tuple[ModelEntry, ...] = (
    *_pair(
        "glm-4.7",
        "zai-org/GLM-4.7",
        GLM47,
        "GLM-4.7 (355B-A32B, 200K)",
        _GLM47_PARSERS,
        (_EAGLE_SGLANG, _MTP_VLLM_47),
    ),
    *_pair(
        "glm-4.7-flash",
        "zai-org/GLM-4.7-Flash",
        GLM47_FLASH,
        "GLM-4.7-Flash (30B-A3B, MLA)",
        _GLM47_PARSERS,
        (SpeculativeSupport("vllm", "mtp", "", 1, "vLLM recipes GLM/GLM.html (GLM-4.X, MTP)"),),
        fp8=False,
    ),
    *_pair("glm-4.5v", "zai-org/GLM-4.5V", GLM45V, "GLM-4.5V (106B-A12B, vision)", _GLM45_PARSERS),
    *_pair("glm-4.6v", "zai-org/GLM-4.6V", GLM46V, "GLM-4.6V (106B-A12B, vision)", _GLM45_PARSERS),
    *_pair(
        "glm-5",
        "zai-org/GLM-5",
        GLM5,
        "GLM-5 (744B-A40B, sparse attention)",
        _GLM47_PARSERS,
        (_MTP_VLLM_5,),
    ),
)

__all__ = ["GLM46", "GLM46_SPECULATIVE", "NEXT_MODELS"]
