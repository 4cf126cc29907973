"""The vision tower in the memory model: its profile peak under vLLM, nothing under SGLang."""

from __future__ import annotations

from controlplane.capacity.engine_rules import memory_rule
from controlplane.capacity.layout import layout_of
from controlplane.capacity.memory import replica_memory
from controlplane.capacity.vision import encoder_peak_bytes, profile_images, vision_extra_bytes
from controlplane.catalog.shapes_next import GLM4V_TOWER
from tests.unit.capacity.conftest import make_topology


def test_encoder_profile_runs_one_largest_image_per_8192_tokens() -> None:
    assert GLM4V_TOWER.max_image_tokens == 7398
    assert profile_images(GLM4V_TOWER, 8192) == 1
    assert profile_images(GLM4V_TOWER, 16384) == 2
    # 29584 patches x (2 + 3 + 1 + 1) x 1536 + 2 x 4096 values x 2 bytes
    assert encoder_peak_bytes(GLM4V_TOWER, 8192) == 29584 * (7 * 1536 + 2 * 4096) * 2


def test_the_encoder_peak_counts_under_vllm_only() -> None:
    vllm = layout_of(make_topology("glm-4.5v", "bf16", "H100", 4, 65536, 1,
                                   engine={"kind": "vllm"}))  # fmt: skip
    sglang = layout_of(make_topology("glm-4.5v", "bf16", "H100", 4, 65536, 1))
    text = layout_of(make_topology("glm-4.5-air", "bf16", "H100", 4, 65536, 1,
                                   engine={"kind": "vllm"}))  # fmt: skip
    extra = vision_extra_bytes(vllm)
    assert 0 < extra < encoder_peak_bytes(GLM4V_TOWER, 8192)
    assert vision_extra_bytes(text) == 0
    # SGLang's static fraction has no encoder term: its rule does not profile the encoder.
    assert memory_rule(vllm).profiles_vision_encoder
    assert not memory_rule(sglang).profiles_vision_encoder
    without = replica_memory(vllm).stages[0]
    assert without.kv_pool_bytes == replica_memory(vllm).budget.static_bytes - (
        without.weights_on_gpu + extra
    )
