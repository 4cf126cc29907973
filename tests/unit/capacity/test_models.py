"""Models beyond GLM-4.5: the smaller GLM family and local Hugging Face configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.capacity import capacity_report
from controlplane.capacity.weights import checkpoint_bytes
from controlplane.catalog import find_model
from controlplane.catalog.hf_config import load_model_config
from controlplane.spec import load_topology
from tests.unit.capacity.conftest import make_topology

CONFIGS = Path(__file__).parent / "configs"
EDGE_4B_INT4_PEAK = 2.9e9  # reference/glm45-deployment.md: Snapdragon 8 Elite NPU, 512 in / 128 out


def test_glm_edge_4b_int4_fits_a_4gb_device_and_int8_does_not() -> None:
    edge = {"model": "glm-edge-4b", "gpu": "V100-16G", "count": 1, "context": 640, "batch": 1,
            "engine": {"kind": "sim", "mem_fraction": 0.9}}  # fmt: skip
    four_gb = 4 * 10**9
    int4 = capacity_report(make_topology(precision="int4", **edge), gpu_memory_bytes=four_gb)
    int8 = capacity_report(make_topology(precision="int8", **edge), gpu_memory_bytes=four_gb)
    assert int4.fits and not int8.fits
    (rank,) = int4.ranks
    # weights + KV of one 640-token sequence, against the published 2.9 GB peak
    assert rank.weights_bytes + rank.kv_required_bytes == pytest.approx(EDGE_4B_INT4_PEAK, rel=0.1)


def test_weight_only_quantisation_roughly_halves_and_quarters() -> None:
    arch = find_model("chatglm2-6b").arch  # type: ignore[union-attr]
    fp16 = checkpoint_bytes(arch, find_model("chatglm2-6b").precisions[0])  # type: ignore[union-attr]
    from controlplane.catalog import Precision

    assert 0.5 < checkpoint_bytes(arch, Precision.INT8) / fp16 < 0.6
    assert 0.3 < checkpoint_bytes(arch, Precision.INT4) / fp16 < 0.35  # 16-bit embeddings stay


def test_chatglm2_6b_sequences_on_an_a100() -> None:
    report = capacity_report(
        make_topology(model="chatglm2-6b", precision="fp16", gpu="A100-80G", count=1, context=32768)
    )
    # multi-query: 2 KV heads x 128 x K/V x 28 layers x 2 bytes per token
    assert report.ranks[0].kv_bytes_per_token == 2 * 128 * 2 * 28 * 2
    most = report.max_concurrency
    assert most > 8
    at_most = make_topology(
        model="chatglm2-6b", precision="fp16", gpu="A100-80G", count=1, context=32768, batch=most
    )
    over = make_topology(
        model="chatglm2-6b",
        precision="fp16",
        gpu="A100-80G",
        count=1,
        context=32768,
        batch=most + 1,
    )
    assert capacity_report(at_most).fits and not capacity_report(over).fits


def _local_topology(tmp_path: Path, config: str, **spec: object) -> Path:
    doc = {"model_config": str(CONFIGS / config), **spec}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    "config,published_b",
    [
        ("llama3-8b.json", 8.03),
        ("mixtral-8x7b.json", 46.7),
        ("qwen3-30b-a3b.json", 30.5),
        ("deepseek-v3.json", 671.0),
    ],
)
def test_local_configs_derive_their_parameter_count(config: str, published_b: float) -> None:
    entry = load_model_config(CONFIGS / config)
    assert entry.arch.total_params(include_nextn=False) / 1e9 == pytest.approx(
        published_b, rel=0.01
    )


def test_local_llama_sizes_like_a_catalog_model(tmp_path: Path) -> None:
    path = _local_topology(
        tmp_path, "llama3-8b.json", gpus={"type": "A100-40G", "count": 1}, context_length=8192
    )
    report = capacity_report(load_topology(path))
    assert report.fits and report.ranks[0].kv_bytes_per_token == 8 * 128 * 2 * 32 * 2


def test_deepseek_v3_fp8_fits_8_h200_not_8_h100(tmp_path: Path) -> None:
    """MLA caches one 512 + 64 latent per token and layer; 671B FP8 needs > 8 x 80 GB."""
    h200 = _local_topology(
        tmp_path, "deepseek-v3.json", gpus={"type": "H200", "count": 8}, context_length=32768
    )
    report = capacity_report(load_topology(h200))
    assert report.fits, report.explain()
    assert report.ranks[0].kv_bytes_per_token == (512 + 64) * 62  # FP8 KV, 61 layers + MTP
    h100 = _local_topology(
        tmp_path, "deepseek-v3.json", gpus={"type": "H100", "count": 8}, context_length=32768
    )
    assert not capacity_report(load_topology(h100)).memory_fits


def test_mixtral_and_qwen_moe_report(tmp_path: Path) -> None:
    for config in ("mixtral-8x7b.json", "qwen3-30b-a3b.json"):
        path = _local_topology(
            tmp_path, config, gpus={"type": "H100", "count": 2}, context_length=16384
        )
        report = capacity_report(load_topology(path))
        assert report.fits and report.ranks[0].weights_by_class["routed_experts"] > 0
