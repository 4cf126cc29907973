"""The catalog: sources on every number, derived sizes near the published ones, lookups."""

from __future__ import annotations

import pytest

from controlplane.catalog import (
    BYTES_PER_VALUE,
    GPUS,
    MODELS,
    Precision,
    checkpoint_for,
    family_precisions,
    find_gpu,
    find_model,
)


def _model(name: str):  # type: ignore[no-untyped-def]
    entry = find_model(name)
    assert entry is not None, name
    return entry


def test_every_model_and_gpu_names_its_source() -> None:
    for entry in MODELS:
        assert entry.sources and all(entry.sources), entry.name
        assert entry.arch.sources and all(entry.arch.sources), entry.name
    for gpu in GPUS:
        assert gpu.source, gpu.name


def test_names_are_unique_and_found_by_alias_and_repository() -> None:
    names = [m.name for m in MODELS]
    assert len(names) == len(set(names))
    assert _model("GLM-4.5").name == "glm-4.5"
    assert _model("glm45-air").name == "glm-4.5-air"
    assert _model("zai-org/GLM-4.5-FP8").name == "glm-4.5-fp8"
    assert find_model("glm-6") is None


@pytest.mark.parametrize(
    ("name", "published_b", "rel"),
    [
        # Model cards: GLM-4.5 355B, GLM-4.5-Air 106B (both rounded), GLM-4.6 = GLM-4.5.
        ("glm-4.5", 355, 0.01),
        ("glm-4.5-air", 106, 0.01),
        ("glm-4.6", 355, 0.01),
        # THUDM model cards: ChatGLM2-6B 6.2B, GLM-4-9B 9.4B; GLM-Edge by its name.
        ("chatglm2-6b", 6.2, 0.02),
        ("glm-4-9b-chat", 9.4, 0.01),
        ("glm-edge-1.5b-chat", 1.5, 0.03),
        ("glm-edge-4b-chat", 4.0, 0.10),
    ],
)
def test_derived_sizes_are_near_the_published_ones(
    name: str, published_b: float, rel: float
) -> None:
    total = _model(name).arch.total_params(include_nextn=False) / 1e9
    assert total == pytest.approx(published_b, rel=rel)


def test_fp8_and_base_checkpoints_share_the_architecture() -> None:
    assert _model("glm-4.5-fp8").arch == _model("glm-4.5").arch == _model("glm-4.5-base").arch
    assert _model("glm-4.5-air-fp8").arch == _model("glm-4.5-air").arch


def test_glm46_is_glm45_with_a_200k_context() -> None:
    glm45, glm46 = _model("glm-4.5").arch, _model("glm-4.6").arch
    assert glm46.max_context == 202752  # zai-org/GLM-4.6 config.json max_position_embeddings
    assert glm46.total_params() == glm45.total_params()


def test_precision_picks_the_checkpoint() -> None:
    assert checkpoint_for(_model("glm-4.5"), Precision.FP8) == _model("glm-4.5-fp8")
    assert checkpoint_for(_model("glm-4.5-fp8"), Precision.BF16) == _model("glm-4.5")
    assert checkpoint_for(_model("glm-4.5-base"), Precision.FP8) is None
    assert checkpoint_for(_model("glm-4.5"), Precision.INT4) is None
    assert family_precisions(_model("glm-4.5")) == (Precision.BF16, Precision.FP8)
    assert family_precisions(_model("glm-4.5-base")) == (Precision.BF16,)


def test_weight_only_int_precisions_are_for_the_small_models() -> None:
    for entry in MODELS:
        quantised = {Precision.INT8, Precision.INT4} & set(entry.precisions)
        if quantised:
            assert entry.arch.total_params() < 10e9, entry.name
        if entry.family in ("glm-4.5", "glm-4.5-air", "glm-4.6"):
            assert not quantised, entry.name


def test_kv_cache_bytes_follow_the_dtype_and_tensor_parallelism() -> None:
    arch = _model("glm-4.5").arch
    bf16 = arch.kv_bytes_per_token(BYTES_PER_VALUE[Precision.BF16])
    assert arch.kv_bytes_per_token(BYTES_PER_VALUE[Precision.FP8]) == bf16 / 2
    assert arch.kv_bytes_per_token(2, tensor_parallel=8) == bf16 / 8
    # 8 KV heads: TP 16 replicates each head on two ranks, so per-rank bytes stop shrinking.
    assert arch.kv_bytes_per_token(2, tensor_parallel=16) == bf16 / 8
    # ChatGLM2-6B: 2 KV groups (multi_query_group_num).
    small = _model("chatglm2-6b").arch
    assert small.kv_bytes_per_token(2) == 2 * 2 * 128 * 28 * 2


def test_gpu_lookup_and_fp8_support() -> None:
    h100 = find_gpu("h100")
    assert h100 is not None and h100.supports_fp8
    assert find_gpu("A100") == find_gpu("a100-80g")
    for name in ("A100-80G", "A100-40G", "V100"):
        gpu = find_gpu(name)
        assert gpu is not None and not gpu.supports_fp8, name
    assert find_gpu("tpu") is None
    # nvidia-smi reports 81,559 MiB on H100 SXM (shared/reference/model-configs.md).
    assert h100.memory_gib == pytest.approx(79.6, abs=0.05)
