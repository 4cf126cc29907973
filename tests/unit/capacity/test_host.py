"""Host RAM per node, and the model card's "more than 1 TB of server memory"."""

from __future__ import annotations

import pytest

from controlplane.capacity import constants as c
from controlplane.capacity.host import card_reference_parts, host_ram, model_card_note
from controlplane.capacity.layout import layout_of
from controlplane.capacity.weights import checkpoint_bytes
from controlplane.catalog import GIB
from tests.unit.capacity.conftest import make_topology


def test_glm45_bf16_node_needs_about_the_card_terabyte() -> None:
    layout = layout_of(make_topology(precision="bf16", gpu="H200", count=8))
    (node,) = host_ram(layout)
    checkpoint = checkpoint_bytes(layout.arch, layout.precision)
    assert node.page_cache == pytest.approx(checkpoint)
    assert 0.7e12 < checkpoint < 0.75e12  # 356.8B parameters x 2 bytes
    assert 0.9e12 < node.total < 1.1e12  # the card's "more than 1 TB"
    assert node.verdict == "ok"
    note = model_card_note(layout, [node])
    assert "1 TB" in note and "meets" in note


def test_card_note_says_which_part_is_rays_object_store() -> None:
    """The 1 TB includes Ray's object store; SGLang launched alone has none (issue 11)."""
    layout = layout_of(make_topology(precision="bf16", gpu="H200", count=8))
    (node,) = host_ram(layout)
    parts = card_reference_parts()
    store = parts["ray_object_store"]
    assert store == pytest.approx(min(c.DEFAULT_NODE_RAM_BYTES * 0.3, 200e9))
    note = model_card_note(layout, [node])
    assert f"Ray's object store {store / 1e9:.0f} GB, which is Ray's, not the engine's" in note
    without = (sum(parts.values()) - store) / 1e12
    assert "SGLang launched on its own" in note and f"{without:.2f} TB" in note
    assert without < 1.0 < sum(parts.values()) / 1e12 + 0.05


def test_small_node_loads_slowly_and_tiny_node_fails() -> None:
    layout = layout_of(make_topology(precision="bf16", gpu="H200", count=8))
    (half_tb,) = host_ram(layout, node_ram=512e9)
    assert half_tb.verdict == "slow-load"  # page cache does not fit; shards re-read from disk
    assert "does not meet" in model_card_note(layout, [half_tb])
    (tiny,) = host_ram(layout, node_ram=64e9)
    assert tiny.verdict == "fails"


def test_pipeline_stages_split_the_page_cache_across_nodes() -> None:
    tp = host_ram(layout_of(make_topology(precision="bf16", gpu="H100", count=16)))
    pp = host_ram(
        layout_of(
            make_topology(
                precision="bf16", gpu="H100", count=16, parallelism={"tensor": 8, "pipeline": 2}
            )
        )
    )
    assert len(tp) == len(pp) == 2
    assert tp[0].page_cache == tp[1].page_cache
    assert pp[0].page_cache + pp[1].page_cache == pytest.approx(tp[0].page_cache)


def test_cpu_offload_pins_about_1_9x_per_gpu() -> None:
    topo = make_topology(
        precision="bf16",
        gpu="H100",
        count=8,
        context=4096,
        engine={"kind": "vllm", "cpu_offload_gb": 16},
    )
    (node,) = host_ram(layout_of(topo))
    assert node.pinned_offload == pytest.approx(8 * 16 * GIB * c.PINNED_HOST_OVERHEAD)


def test_ray_object_store_default_is_capped() -> None:
    (node,) = host_ram(layout_of(make_topology()), node_ram=100e9)
    assert node.ray_object_store == pytest.approx(30e9)
    (big,) = host_ram(layout_of(make_topology()), node_ram=2e12)
    assert big.ray_object_store == 200e9
