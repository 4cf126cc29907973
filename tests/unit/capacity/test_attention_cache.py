"""KV bytes per token for MLA (GLM-4.7-Flash), MLA + sparse attention (GLM-5) and GQA, as
SGLang and vLLM allocate them; the expected bytes are written out from the engines' layouts
(attention_cache.py names the files), not read back from the module."""

from __future__ import annotations

import pytest

from controlplane.capacity.attention_cache import (
    indexer_bytes_per_token_layer,
    kv_cache_bytes_per_token_layer,
    page_tokens,
)
from controlplane.capacity.engine_rules import SGLANG_MEMORY, VLLM_MEMORY
from controlplane.capacity.fastcheck import FastCheck, SplitShape
from controlplane.capacity.layout import layout_of
from controlplane.capacity.memory import replica_memory
from controlplane.capacity.search import apply_shape
from controlplane.catalog import Architecture, Precision, find_model
from tests.unit.capacity.conftest import make_topology


def _arch(name: str) -> Architecture:
    entry = find_model(name)
    assert entry is not None
    return entry.arch


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_glm47_flash_latent_is_576_values_on_every_rank(tp: int) -> None:
    arch = _arch("glm-4.7-flash")
    assert kv_cache_bytes_per_token_layer(arch, Precision.BF16, tp) == (512 + 64) * 2
    assert kv_cache_bytes_per_token_layer(arch, Precision.FP8, tp) == 512 + 64


def test_glm5_fp8_sparse_layout_and_indexer() -> None:
    arch = _arch("glm-5")
    # FlashMLA sparse FP8: 512 e4m3 values + 4 float32 scales + 64 BF16 rope values = 656;
    # indexer key: 128 FP8 values + one float32 scale = 132.
    assert indexer_bytes_per_token_layer(arch) == 128 + 4
    assert kv_cache_bytes_per_token_layer(arch, Precision.FP8, 8) == 512 + 16 + 128 + 132
    assert kv_cache_bytes_per_token_layer(arch, Precision.BF16, 8) == 576 * 2 + 132


def test_gqa_is_unchanged_for_glm47() -> None:
    arch = _arch("glm-4.7")
    # 8 KV heads of 128: TP 8 keeps one head of K and V per rank; TP 16 replicates it.
    assert kv_cache_bytes_per_token_layer(arch, Precision.FP8, 8) == 2 * 1 * 128
    assert kv_cache_bytes_per_token_layer(arch, Precision.BF16, 4) == 2 * 2 * 128 * 2
    assert kv_cache_bytes_per_token_layer(arch, Precision.FP8, 16) == 2 * 1 * 128


def test_pages_differ_between_engines_for_sparse_attention() -> None:
    glm5, flash = _arch("glm-5"), _arch("glm-4.7-flash")
    sglang, vllm = SGLANG_MEMORY.sparse_attention_page, VLLM_MEMORY.sparse_attention_page
    assert page_tokens(glm5, 1, sglang) == 64
    assert page_tokens(flash, 1, sglang) == 1
    assert page_tokens(glm5, 64, vllm) == 64


@pytest.mark.parametrize(
    ("model", "precision", "gpu", "engine"),
    [
        ("glm-5", "fp8", "H200", "sglang"),
        ("glm-5", "fp8", "H200", "vllm"),
        ("glm-4.7-flash", "bf16", "H100", "sglang"),
        ("glm-4.7-flash", "bf16", "H100", "vllm"),
        ("glm-4.5v", "bf16", "H100", "vllm"),
    ],
)
def test_fastcheck_agrees_with_the_breakdown(
    model: str, precision: str, gpu: str, engine: str
) -> None:
    base = layout_of(make_topology(model, precision, gpu, 1, 65536, 4, engine={"kind": engine}))
    check = FastCheck(base)
    for shape in (SplitShape(1, 1, 1, 1), SplitShape(4, 1, 1, 1), SplitShape(8, 1, 1, 8)):
        if base.arch.num_attention_heads % shape.tp:
            continue
        layout = apply_shape(base, shape)
        assert check.fits(shape) == replica_memory(layout).fits, shape


def test_glm5_pool_tokens_follow_the_sparse_cell() -> None:
    """The pool holds budget / (layers x 788 bytes) tokens on the DSA page of 64."""
    layout = layout_of(make_topology("glm-5", "fp8", "H200", 8, 202752, 1))
    memory = replica_memory(layout)
    (stage,) = memory.stages
    layers = 78 + 1  # main layers + the MTP draft layer (EAGLE on by default)
    assert stage.kv_bytes_per_token == layers * 788
    assert stage.kv_tokens % 64 == 0
    assert stage.kv_tokens == int(stage.kv_pool_bytes // (layers * 788 * 64)) * 64
