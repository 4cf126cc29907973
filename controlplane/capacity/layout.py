"""`Layout`: the few numbers the memory model needs, lighter than a resolved `Topology`.

The search evaluates tens of thousands of layouts, so it builds `Layout`s directly instead
of resolving a spec for each; `layout_of(topo)` turns a resolved topology into one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from controlplane.catalog import Architecture, GpuType, Precision
from controlplane.spec import Topology
from controlplane.spec.models import EngineKind


@dataclass(frozen=True)
class Layout:
    """One replica: the model, the GPUs, how it is split and what it must hold."""

    arch: Architecture
    precision: Precision  # weights as served
    kv_dtype: Precision
    gpu: GpuType
    tp: int
    context: int
    max_num_seqs: int
    pp: int = 1
    dp: int = 1
    ep: int = 1
    dp_attention: bool = False
    engine: EngineKind = EngineKind.SGLANG  # the topology's engine (engine_rules.memory_rule)
    spec_steps: int = 0  # 0: no speculative decoding
    spec_topk: int = 1
    spec_draft_tokens: int = 0
    mem_fraction: float | None = None  # explicit engine fraction; None: the engine's rule
    chunked_prefill: int | None = None
    cpu_offload_gb: float = 0.0
    gpus_per_node: int = 8
    weight_format: Precision | None = None  # checkpoint format (block-FP8 checks); None: precision
    engine_version: tuple[int, int] | None = (
        None  # (major, minor); None: the version glmctl targets
    )
    page_size: int | None = None  # KV page (vLLM --block-size / SGLang --page-size); None: default
    # The engine a simulated replica mimics (`simulation.flavor`): an engine without a
    # memory rule of its own (the simulator) is sized by this one's rule.
    flavor: EngineKind | None = None

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def nodes(self) -> int:
        return math.ceil(self.gpus / self.gpus_per_node)

    @property
    def speculative(self) -> bool:
        return self.spec_steps > 0

    @property
    def checkpoint_format(self) -> Precision:
        return self.weight_format or self.precision

    @property
    def moe_group(self) -> int:
        """Ranks the routed experts of a layer are spread over (EP x MoE-TP)."""
        return self.tp * self.dp if self.dp_attention else self.tp

    @property
    def dense_tp(self) -> int:
        """Ranks the dense MLP, shared experts and vocab are split over (SGLang DP attention
        keeps them on the whole TP group: `moe_dense_tp_size` defaults to it)."""
        return self.moe_group

    @property
    def copies(self) -> int:
        """Independent KV pools in the replica: one per data-parallel rank."""
        return self.dp

    @property
    def required_tokens(self) -> int:
        """KV tokens one pool must hold: its share of max_num_seqs sequences at full context."""
        return math.ceil(self.max_num_seqs / self.copies) * self.context

    def with_(self, **changes: object) -> Layout:
        return replace(self, **changes)  # type: ignore[arg-type]


def layout_of(topo: Topology) -> Layout:
    """The `Layout` of a resolved topology."""
    spec = topo.spec
    speculative = topo.speculative
    steps = topk = draft = 0
    if speculative is not None:
        steps = speculative.num_steps or 1
        topk = speculative.eagle_topk or 1
        draft = speculative.num_draft_tokens or steps + 1
    return Layout(
        arch=topo.arch,
        precision=topo.precision,
        kv_dtype=topo.kv_cache_dtype,
        gpu=topo.gpu,
        tp=topo.tp,
        context=topo.context_length,
        max_num_seqs=spec.max_num_seqs,
        pp=topo.pp,
        dp=topo.dp,
        ep=topo.ep,
        dp_attention=spec.parallelism.dp_attention,
        engine=topo.engine,
        flavor=spec.simulation.flavor,
        spec_steps=steps,
        spec_topk=max(topk, 1),
        spec_draft_tokens=draft,
        mem_fraction=spec.engine.mem_fraction,
        chunked_prefill=spec.engine.chunked_prefill,
        cpu_offload_gb=spec.engine.cpu_offload_gb,
        # GPUs the replica uses per node; one node: the node size (a search may grow it).
        gpus_per_node=topo.gpus_per_node if topo.nodes > 1 else spec.gpus.per_node,
        weight_format=topo.model.weight_format,
        engine_version=parse_version(spec.engine.version),
    )


def parse_version(text: str | None) -> tuple[int, int] | None:
    """(major, minor) of an engine version string such as "0.32.0" or "v0.5.23rc1"."""
    if not text:
        return None
    parts = text.strip().lstrip("v").split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return None
