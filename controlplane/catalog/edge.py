"""Edge device classes and the runtimes that serve GLM models on them, each constant sourced.

An edge device is not a GPU of a cluster: one process on a phone NPU, a laptop's integrated
GPU or a phone CPU, sharing the device's RAM. `glmctl capacity --gpu <device>` sizes a
model there with the device's runtime (capacity/edge.py). Published footprints to compare
with are in shared/reference/glm-family.md; none of them is used as a constant here.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 10**9


@dataclass(frozen=True)
class EdgeRuntime:
    """How a runtime stores a model's weights in memory."""

    name: str
    group_size: int  # values per quantisation group of the linear layers (0: per channel)
    group_bytes: float  # bytes of scale (and zero point) per group of 4-bit weights
    embedding_bytes: float | None  # bytes per embedding value in memory; None: kept on disk
    lm_head_bytes: float | None  # bytes per output-layer value; None: as the linear layers
    overhead_bytes: int  # runtime memory besides weights and KV (0: none published)
    kv_bytes: float  # bytes per cached K or V value
    weights_source: str
    embedding_source: str
    overhead_source: str = "none published for this runtime: 0"


@dataclass(frozen=True)
class EdgeDevice:
    """A device class: its memory and the runtime the published figures used on it."""

    name: str
    display_name: str
    memory_bytes: int
    runtime: EdgeRuntime
    source: str


QNN = EdgeRuntime(
    "Qualcomm QNN (NPU)",
    group_size=128,
    group_bytes=2.0,
    embedding_bytes=2.0,
    lm_head_bytes=2.0,
    overhead_bytes=0,
    kv_bytes=2.0,
    weights_source="no QNN weight layout is published for GLM-Edge: glmctl's weight-only rule"
    " (one FP16 scale per 128 values; capacity/constants.py INT_GROUP_SIZE)",
    embedding_source="glmctl's weight-only rule: embedding and output layer stay 16-bit",
)
OPENVINO = EdgeRuntime(
    "Intel OpenVINO (GPU plugin)",
    group_size=128,
    group_bytes=2.0 + 0.5,  # FP16 scale + a 4-bit zero point per group (INT4_ASYM)
    embedding_bytes=1.0,
    lm_head_bytes=1.0,
    overhead_bytes=0,
    kv_bytes=2.0,
    weights_source="NNCF CompressWeights.md: INT4_ASYM, groups of 128 share a scale and zero point",
    embedding_source="NNCF CompressWeights.md: embeddings and last linear layers are always"
    " compressed to 8-bit",
)
MNN = EdgeRuntime(
    "MNN (CPU, low-memory mode)",
    group_size=0,  # per output channel (ChatGLM-MNN, 2023): negligible per value
    group_bytes=0.0,
    embedding_bytes=None,
    lm_head_bytes=None,
    overhead_bytes=0,
    kv_bytes=2.0,
    weights_source="ChatGLM-MNN (2023): per-channel weight quantisation; low-memory mode"
    " dequantises inside the GEMM (reference/glm-family.md)",
    embedding_source="reference/glm-family.md: the embedding stays on disk (bf16, fseek/fread);"
    " the output layer is a quantised linear like the blocks",
)

EDGE_DEVICES: tuple[EdgeDevice, ...] = (
    EdgeDevice(
        "SD8-ELITE",
        "Snapdragon 8 Elite phone (Hexagon NPU)",
        16 * GB,
        QNN,
        "GLM-Edge README (QNN figures); 16 GB LPDDR5X, a common 8 Elite phone configuration",
    ),
    EdgeDevice(
        "LNL-288V",
        "Intel Core Ultra 7 288V (Arc 140V iGPU)",
        32 * GB,
        OPENVINO,
        "GLM-Edge README (OpenVINO figures); Intel ARK: 32 GB on-package LPDDR5X",
    ),
    EdgeDevice(
        "XIAOMI-12",
        "Xiaomi 12 phone (CPU)",
        8 * GB,
        MNN,
        "reference/glm-family.md (ChatGLM-6B on MNN); 8 GB, the phone's base configuration",
    ),
)
_BY_NAME = {d.name.lower(): d for d in EDGE_DEVICES}


def find_edge_device(name: str) -> EdgeDevice | None:
    """The edge device class called `name` (case-insensitive), None if it is not one."""
    return _BY_NAME.get(name.strip().lower())
