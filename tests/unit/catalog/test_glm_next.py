"""The GLM generations after GLM-4.5: names, parsers, context, parameter counts against the
model cards' rounded totals, and the vision processor's token counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.catalog import ModelEntry, Precision, checkpoint_for, find_model
from controlplane.catalog.vision import VisionEncoder

NAMES = [
    "glm-4.6", "glm-4.6-fp8", "glm-4.7", "glm-4.7-fp8", "glm-4.7-flash", "glm-4.5v",
    "glm-4.5v-fp8", "glm-4.6v", "glm-4.6v-fp8", "glm-5", "glm-5-fp8",
]  # fmt: skip


def _entry(name: str) -> ModelEntry:
    entry = find_model(name)
    assert entry is not None, name
    return entry


@pytest.mark.parametrize("name", NAMES)
def test_named_as_the_repository_in_lower_case(name: str) -> None:
    entry = _entry(name)
    assert entry.hf_repo.split("/")[1].lower() == name
    assert entry.sources and all(entry.sources)


def test_glm5_fp8_is_what_a_user_types() -> None:
    entry = checkpoint_for(_entry("glm-5"), Precision.FP8)
    assert entry is not None and entry.hf_repo == "zai-org/GLM-5-FP8"
    assert entry.architecture == "GlmMoeDsaForCausalLM"


@pytest.mark.parametrize(
    ("name", "tool", "context"),
    [
        ("glm-4.6", "glm45", 202752),
        ("glm-4.7", "glm47", 202752),
        ("glm-4.7-flash", "glm47", 202752),
        ("glm-5", "glm47", 202752),
        ("glm-4.5v", "glm45", 65536),
        ("glm-4.6v", "glm45", 131072),
    ],
)
def test_parsers_and_context(name: str, tool: str, context: int) -> None:
    entry = _entry(name)
    assert (entry.tool_parser, entry.reasoning_parser) == (tool, "glm45")
    assert entry.arch.max_context == context


@pytest.mark.parametrize(
    ("name", "total_b", "active_b", "tolerance"),
    [
        ("glm-5", 744, 40, 0.03),  # model card 744B-A40B (without the MTP layer)
        ("glm-4.7", 355, 32, 0.03),
        ("glm-4.7-flash", 30, 3, 0.25),  # "30B-A3B": A3B is rounded down from ~3.3B + head
    ],
)
def test_parameter_counts_match_the_cards(
    name: str, total_b: float, active_b: float, tolerance: float
) -> None:
    arch = _entry(name).arch
    assert arch.total_params(include_nextn=False) / 1e9 == pytest.approx(total_b, rel=0.02)
    assert arch.active_params() / 1e9 == pytest.approx(active_b, rel=tolerance)


def test_vision_models_accept_images_and_text_models_do_not() -> None:
    assert _entry("glm-4.5v").accepts_images and _entry("glm-4.6v-fp8").accepts_images
    assert not _entry("glm-4.7").accepts_images and not _entry("glm-5").accepts_images
    tower = _entry("glm-4.5v").arch.vision
    assert tower is not None
    # 24 blocks of (4 h^2 + 3 h x 4096) with h = 1536 dominate: about 0.9B parameters.
    assert tower.params() / 1e9 == pytest.approx(0.89, abs=0.02)


TOWER = VisionEncoder(depth=24, hidden_size=1536, num_heads=12, out_hidden_size=4096,
                      intermediate_size=13696)  # fmt: skip


@pytest.mark.parametrize(
    ("height", "width", "tokens"),
    [
        # 1024 / 28 = 36.6 -> 37 x 28 = 1036 per side: (1036 / 14)^2 / 4 = 1369, + 2 markers
        (1024, 1024, 1369 + 2),
        # 448 x 672 is already 28-aligned: 32 x 48 patches -> 16 x 24 tokens = 384, + 2
        (448, 672, 384 + 2),
        # tiny: scaled up to 28 x 28, then 2 x 28 x 28 < 112 x 112 so beta = sqrt(8) and each
        # side becomes ceil(28 x 2.83 / 28) x 28 = 84: 6 x 6 patches -> 9 tokens, + 2
        (10, 10, 9 + 2),
    ],
)
def test_image_tokens_follow_the_processor(height: int, width: int, tokens: int) -> None:
    assert TOWER.image_tokens(height, width) == tokens


def test_largest_image_stays_within_max_pixels() -> None:
    # max_pixels 28 x 28 x 15000 counts two frames: at most 5,880,000 pixels per image,
    # i.e. 30,000 patches and 7,500 tokens; the square below that lands on 86 x 28 = 2408.
    assert TOWER.max_image_tokens == (2408 // 14) ** 2 // 4 + 2 == 7398
    assert TOWER.max_image_tokens - 2 <= 28 * 28 * 15000 // 2 // (28 * 28)


@pytest.mark.parametrize("name", ["glm-5", "glm-4.7-flash"])
def test_a_local_config_of_the_new_types_sizes_like_the_catalog(name: str, tmp_path: Path) -> None:
    import json

    from controlplane.catalog.config_json import next_config
    from controlplane.catalog.hf_config import load_model_config

    arch = _entry(name).arch
    (tmp_path / "config.json").write_text(json.dumps(next_config(arch)))
    local = load_model_config(tmp_path)
    assert local.arch.total_params() == arch.total_params()
    assert local.arch.kv_bytes_per_token(1.0) == arch.kv_bytes_per_token(1.0)
    assert (local.tool_parser, local.architecture) == ("glm47", _entry(name).architecture)
