"""Memory of one model on an edge device: weights by precision, KV, embedding, runtime.

`edge_footprint(arch, precision, device, context)` is pure. Every line is derived from the
architecture and the runtime's constants (catalog/edge.py, each with its source); the
published footprints of reference/glm-family.md are compared in tests and the README,
never used here.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.catalog import BYTES_PER_VALUE, Architecture, Precision
from controlplane.catalog.edge import EdgeDevice

EDGE_PRECISIONS = (Precision.FP16, Precision.BF16, Precision.INT8, Precision.INT4)
DISK_EMBEDDING_BYTES = 2.0  # MNN stores the on-disk embedding as bf16 (reference/glm-family.md)


@dataclass(frozen=True)
class FootprintLine:
    label: str
    bytes: float
    note: str


@dataclass(frozen=True)
class EdgeFootprint:
    """Resident memory lines, their total and the device's memory."""

    device: str
    runtime: str
    precision: Precision
    context_tokens: int
    lines: tuple[FootprintLine, ...]
    on_disk_bytes: float  # weights the runtime reads from disk instead of holding
    memory_bytes: int

    @property
    def total_bytes(self) -> float:
        return sum(line.bytes for line in self.lines)

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.memory_bytes


def layer_linear_params(arch: Architecture) -> float:
    """Quantisable matrix parameters of one dense decoder layer (biases excluded)."""
    bias = (arch.num_attention_heads + 2 * arch.num_kv_heads) * arch.head_dim
    return arch.attention_params() - (bias if arch.attention_bias else 0) + arch.dense_mlp_params()


def edge_footprint(
    arch: Architecture, precision: Precision, device: EdgeDevice, context_tokens: int
) -> EdgeFootprint:
    """The footprint of `arch` at `precision` on `device` holding `context_tokens` of KV.

    Raises ValueError for a precision edge runtimes do not serve or a MoE model.
    """
    if precision not in EDGE_PRECISIONS:
        raise ValueError(f"edge runtimes serve {', '.join(p.value for p in EDGE_PRECISIONS)}")
    if arch.is_moe:
        raise ValueError("edge footprints cover dense models")
    rt = device.runtime
    value = BYTES_PER_VALUE[precision]
    quantised = precision in (Precision.INT8, Precision.INT4)
    per_group = rt.group_bytes / rt.group_size if quantised and rt.group_size else 0.0
    linear = arch.num_layers * layer_linear_params(arch)
    table = arch.vocab_size * arch.hidden_size
    lines = [
        FootprintLine(f"decoder linears ({precision.value})", linear * value, rt.weights_source),
        FootprintLine("quantisation scales", linear * per_group, rt.weights_source),
    ]
    on_disk = 0.0
    if rt.embedding_bytes is None:
        on_disk = table * DISK_EMBEDDING_BYTES
        lines.append(FootprintLine("embedding (kept on disk)", 0.0, rt.embedding_source))
    else:
        embed_bytes = min(rt.embedding_bytes, 2.0) if quantised else 2.0
        lines.append(FootprintLine("embedding", table * embed_bytes, rt.embedding_source))
    head = 0 if arch.tie_word_embeddings and rt.embedding_bytes is not None else table
    head_value = value + per_group if rt.lm_head_bytes is None else rt.lm_head_bytes
    head_value = head_value if quantised else 2.0
    lines.append(FootprintLine("output layer", head * head_value, rt.embedding_source))
    keep = arch.num_layers * arch.norm_params() + arch.hidden_size
    if arch.attention_bias:
        keep += arch.num_layers * (arch.num_attention_heads + 2 * arch.num_kv_heads) * arch.head_dim
    lines.append(FootprintLine("norms and biases (16-bit)", keep * 2.0, "architecture"))
    kv = arch.kv_bytes_per_token(rt.kv_bytes) * context_tokens
    lines.append(
        FootprintLine(f"KV cache ({context_tokens} tokens)", kv, "FP16 K and V, every layer")
    )
    lines.append(FootprintLine("runtime overhead", float(rt.overhead_bytes), rt.overhead_source))
    return EdgeFootprint(
        device.name,
        rt.name,
        precision,
        context_tokens,
        tuple(lines),
        on_disk,
        device.memory_bytes,
    )
