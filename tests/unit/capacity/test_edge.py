"""Edge footprints against every published figure of reference/glm-family.md.

The figures below are the reference's; glmctl derives its numbers from the architecture
and the runtime constants of catalog/edge.py (none of which is taken from these figures).
The table of docs/guides/glm-family.md shows the same comparison.
"""

from __future__ import annotations

import pytest

from controlplane.capacity.edge import edge_footprint, layer_linear_params
from controlplane.capacity.weights import checkpoint_bytes
from controlplane.catalog import GIB, MIB, Precision, find_model
from controlplane.catalog.edge import EDGE_DEVICES, find_edge_device

GB = 1e9
# (model, device, prompt + output tokens, published peak GB): GLM-Edge README via the reference.
QNN_PEAKS = [
    ("glm-edge-4b-chat", "SD8-ELITE", 512 + 128, 2.9),
    ("glm-edge-1.5b-chat", "SD8-ELITE", 512 + 128, 1.2),
]
OPENVINO_PEAKS = [
    ("glm-edge-4b-chat", "LNL-288V", 1024 + 128, 3.9),
    ("glm-edge-1.5b-chat", "LNL-288V", 1024 + 128, 2.3),
]


def _footprint(model: str, device: str, tokens: int, precision: Precision = Precision.INT4):  # type: ignore[no-untyped-def]
    entry, dev = find_model(model), find_edge_device(device)
    assert entry is not None and dev is not None
    return edge_footprint(entry.arch, precision, dev, tokens)


@pytest.mark.parametrize(("model", "device", "tokens", "published"), QNN_PEAKS)
def test_qnn_peaks_within_20_percent(
    model: str, device: str, tokens: int, published: float
) -> None:
    total = _footprint(model, device, tokens).total_bytes / GB
    assert total == pytest.approx(published, rel=0.2)


def test_openvino_gap_is_one_model_independent_offset() -> None:
    # Not within 20%: both models sit ~1.4 GB under the published peak. The same gap for a
    # 1.5B and a 4B model is runtime memory (no published constant), not weights or KV.
    gaps = [pub - _footprint(m, d, t).total_bytes / GB for m, d, t, pub in OPENVINO_PEAKS]
    assert all(g > 1.0 for g in gaps)
    assert abs(gaps[0] - gaps[1]) < 0.15


def test_mnn_chatglm_6b_blocks_and_phone() -> None:
    arch = find_model("chatglm-6b").arch  # type: ignore[union-attr]
    block = layer_linear_params(arch)
    assert block * 2 / MIB == pytest.approx(385, rel=0.01)  # "about 385 MB each in fp16"
    assert 28 * block * 4 / GIB == pytest.approx(21, rel=0.05)  # "about 21 GB in fp32"
    int4 = _footprint("chatglm-6b", "XIAOMI-12", 0)
    blocks = next(line.bytes for line in int4.lines if line.label.startswith("decoder"))
    assert blocks / GB == pytest.approx(2.6, rel=0.2)  # int4/int8 blocks "about 2.6 GB"
    # Phone, int4, "about 2.9 GB RAM" (no context given): weights alone, KV on top.
    assert int4.total_bytes / GB == pytest.approx(2.9, rel=0.2)
    assert int4.on_disk_bytes > 0 and any("on disk" in line.label for line in int4.lines)


def test_lyra_int8_halves_chatglm_6b_weights() -> None:
    # lyraChatGLM INT8 weight-only: "GPU memory reduced by about half".
    arch = find_model("chatglm-6b").arch  # type: ignore[union-attr]
    ratio = checkpoint_bytes(arch, Precision.INT8) / checkpoint_bytes(arch, Precision.FP16)
    assert ratio == pytest.approx(0.5, rel=0.2)


def test_footprint_lines_are_separate_and_sourced() -> None:
    fp = _footprint("glm-edge-4b-chat", "LNL-288V", 1152)
    labels = [line.label for line in fp.lines]
    assert labels[0].startswith("decoder linears") and "embedding" in labels
    assert any(label.startswith("KV cache") for label in labels) and "runtime overhead" in labels
    assert all(line.note for line in fp.lines)
    # int8 embedding on OpenVINO: half the 16-bit table.
    embed = next(line.bytes for line in fp.lines if line.label == "embedding")
    assert embed == 59264 * 3072


def test_precision_changes_only_the_weight_lines() -> None:
    int4 = _footprint("glm-edge-4b-chat", "SD8-ELITE", 640)
    fp16 = _footprint("glm-edge-4b-chat", "SD8-ELITE", 640, Precision.FP16)
    assert fp16.lines[0].bytes == 4 * int4.lines[0].bytes
    assert fp16.lines[-2].bytes == int4.lines[-2].bytes  # KV


def test_bad_edge_requests() -> None:
    dev = EDGE_DEVICES[0]
    with pytest.raises(ValueError, match="edge runtimes serve"):
        edge_footprint(find_model("glm-edge-4b").arch, Precision.FP8, dev, 10)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="dense"):
        edge_footprint(find_model("glm-4.5").arch, Precision.INT4, dev, 10)  # type: ignore[union-attr]
