"""`capacity_report(topo)`: the per-rank and per-node answer, serialisable and printable.

Verdict rules: a replica fits when, on every rank, weights + the engine's reserve + the KV
for `max_num_seqs` sequences at `context_length` fit the GPU (under the engine's own
memory rule, or the spec's explicit fraction), and preflight finds no error. Host RAM has
its own verdict (`host_verdict`); it does not change `fits`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, Field

from controlplane.capacity import constants as c
from controlplane.capacity.host import NodeRam, host_ram, model_card_note
from controlplane.capacity.layout import Layout, layout_of
from controlplane.capacity.memory import ReplicaMemory, StageMemory, replica_memory
from controlplane.capacity.perf_notes import decode_caveat
from controlplane.capacity.performance import performance_model
from controlplane.capacity.preflight import Finding, Severity, preflight
from controlplane.capacity.suggest import Suggestion, suggestions
from controlplane.catalog import GIB, Precision, checkpoint_for
from controlplane.spec import Topology


class RankMemory(BaseModel):
    """Memory of each GPU rank of one pipeline stage (the ranks of a stage are alike)."""

    stage: int
    ranks: str  # "0-7"
    layers: str  # "0-45" (decoder layers held), "+mtp" when the draft layer is here
    gpu_bytes: int
    weights_bytes: int
    weights_by_class: dict[str, int]
    offloaded_weights_bytes: int
    engine_reserved_bytes: int
    kv_bytes_per_token: int
    kv_required_bytes: int
    kv_pool_bytes: int
    kv_tokens: int
    headroom_bytes: int  # budget left after weights and the required KV (negative: short)


class NodeMemory(BaseModel):
    node: int
    gpus: int
    page_cache_bytes: int
    engine_processes_bytes: int
    ray_object_store_bytes: int
    pinned_offload_bytes: int
    os_reserve_bytes: int
    required_bytes: int
    total_bytes: int
    node_ram_bytes: int
    verdict: str  # ok | slow-load | fails


class FindingOut(BaseModel):
    severity: str
    code: str
    message: str
    fix: str


class SuggestionOut(BaseModel):
    change: str
    gpus: int
    layout: str
    headroom_bytes: int


class CapacityReport(BaseModel):
    """Everything `glmctl capacity` prints; the planner reads `fits`, `engine_mem_fraction`
    and `host_ram_per_node_bytes`; the simulator reads `kv_token_capacity`."""

    name: str
    model: str
    precision: str
    kv_cache_dtype: str
    gpu: str
    gpus: int
    nodes: int
    tp: int
    pp: int
    dp: int
    ep: int
    dp_attention: bool
    engine: str
    speculative: str
    context_length: int
    max_num_seqs: int
    fits: bool
    memory_fits: bool
    verdict: str
    headroom_bytes: int  # smallest over ranks
    shortfall_bytes: int  # 0 when it fits
    kv_token_capacity: int  # whole replica
    kv_tokens_required: int
    max_concurrency: int  # sequences at context_length the replica holds
    max_context_at_batch: int  # longest context for max_num_seqs sequences
    engine_mem_fraction: float
    engine_mem_fraction_flag: str
    engine_mem_fraction_auto: bool
    engine_reserved_bytes: dict[str, int]
    ranks: list[RankMemory]
    host_ram_per_node_bytes: int
    host_verdict: str
    host_nodes: list[NodeMemory]
    host_note: str
    findings: list[FindingOut] = Field(default_factory=list)
    suggestions: list[SuggestionOut] = Field(default_factory=list)
    decode_tokens_per_s: float  # whole replica at max_num_seqs, half-full contexts
    tokens_per_step: float
    assumptions: list[str] = Field(default_factory=list)
    decode_caveat: str = ""  # where published runs say the estimate is optimistic

    def explain(self) -> str:
        """One paragraph: the verdict, and what to change when it does not fit."""
        text = self.verdict
        errors = [f for f in self.findings if f.severity == Severity.ERROR.value]
        if errors:
            text += " " + " ".join(f"{f.message} To fix: {f.fix}" for f in errors)
        if self.suggestions:
            text += " Layouts that fit: " + "; ".join(
                f"{s.change} ({s.layout})" for s in self.suggestions[:3]
            )
        return text


def _range(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _rank_rows(memory: ReplicaMemory) -> list[RankMemory]:
    budget = memory.budget
    total = memory.layout.gpu.memory_bytes
    rows = []
    for stage in memory.stages:
        mtp = "+mtp" if stage.weights.mtp_draft else ""
        rows.append(
            RankMemory(
                stage=stage.stage,
                ranks=_range(*stage.ranks),
                layers=_range(stage.layers[0], stage.layers[1] - 1) + mtp,
                gpu_bytes=total,
                weights_bytes=int(stage.weights.total),
                weights_by_class={k: int(v) for k, v in stage.weights.as_dict().items() if v},
                offloaded_weights_bytes=int(stage.offloaded_bytes),
                engine_reserved_bytes=int(budget.reserved_bytes),
                kv_bytes_per_token=int(stage.kv_bytes_per_token),
                kv_required_bytes=int(memory.required_tokens * stage.kv_bytes_per_token),
                kv_pool_bytes=int(max(0.0, stage.kv_pool_bytes)),
                kv_tokens=stage.kv_tokens,
                headroom_bytes=int(memory.headroom_bytes(stage)),
            )
        )
    return rows


def _max_context(memory: ReplicaMemory) -> int:
    layout = memory.layout
    per_pool = -(-layout.max_num_seqs // layout.copies)
    return min(layout.arch.max_context, memory.kv_tokens // per_pool)


def _verdict(layout: Layout, memory: ReplicaMemory, errors: list[Finding]) -> str:
    tight: StageMemory = memory.tightest
    head = memory.headroom_bytes(tight) / GIB
    where = f"{layout.gpus} x {layout.gpu.name}"
    if memory.fits and not errors:
        verb = "holds" if layout.gpus == 1 else "hold"
        seqs = "sequence" if layout.max_num_seqs == 1 else "sequences"
        return (
            f"Fits: {where} {verb} {layout.max_num_seqs} {seqs} of {layout.context} tokens"
            f" with {head:.1f} GiB to spare per GPU (tightest: stage {tight.stage})."
        )
    if not memory.fits:
        weights = tight.weights_on_gpu / GIB
        budget = memory.budget.static_bytes / GIB
        if tight.kv_pool_bytes <= 0:
            why = (
                f"weights alone ({weights:.1f} GiB per GPU) exceed the {budget:.1f} GiB the"
                " engine allows per GPU"
            )
        else:
            why = (
                f"the {budget:.1f} GiB the engine allows per GPU, after {weights:.1f} GiB of"
                f" weights, holds {memory.kv_tokens} KV tokens, not the"
                f" {memory.required_tokens} needed"
            )
        return (
            f"Does not fit: on {where}, {why}; {-head:.1f} GiB short per GPU on stage"
            f" {tight.stage}."
        )
    return f"Memory fits on {where}, but preflight found {len(errors)} error(s)."


def capacity_report(
    topo: Topology, node_ram_bytes: float | None = None, gpu_memory_bytes: int | None = None
) -> CapacityReport:
    """The capacity report of one replica of `topo` (pure).

    `gpu_memory_bytes` sizes a device the catalog does not list (a 4 GB laptop GPU, say):
    the topology's GPU type with that much memory.
    """
    layout = layout_of(topo)
    if gpu_memory_bytes is not None:
        gpu = replace(
            layout.gpu,
            name=f"{layout.gpu.name}-{gpu_memory_bytes / 1e9:g}GB",
            memory_bytes=int(gpu_memory_bytes),
            torch_total_gib=0.0,
        )
        layout = layout.with_(gpu=gpu)
    memory = replica_memory(layout)
    findings = preflight(topo, layout)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    fits = memory.fits and not errors
    fp8 = checkpoint_for(topo.model, Precision.FP8) is not None
    return CapacityReport(
        **_identity(topo, layout),
        **_gpu_fields(memory),
        **_host_fields(layout, node_ram_bytes or c.DEFAULT_NODE_RAM_BYTES),
        **_performance_fields(topo, layout),
        fits=fits,
        verdict=_verdict(layout, memory, errors),
        findings=[FindingOut(**f.as_dict()) for f in findings],
        suggestions=[] if fits else [_suggestion_row(s) for s in suggestions(layout, fp8)],
    )


def _identity(topo: Topology, layout: Layout) -> dict[str, Any]:
    spec = topo.speculative
    return {
        "name": topo.spec.name or topo.model.name,
        "model": topo.model.name,
        "precision": layout.precision.value,
        "kv_cache_dtype": layout.kv_dtype.value,
        "gpu": layout.gpu.name,
        "gpus": layout.gpus,
        "nodes": topo.nodes,
        "tp": layout.tp,
        "pp": layout.pp,
        "dp": layout.dp,
        "ep": layout.ep,
        "dp_attention": layout.dp_attention,
        "engine": topo.engine.value,
        "speculative": "off"
        if spec is None
        else f"{spec.algorithm} {spec.num_steps}/{spec.eagle_topk}/{spec.num_draft_tokens}",
        "context_length": layout.context,
        "max_num_seqs": layout.max_num_seqs,
    }


def _gpu_fields(memory: ReplicaMemory) -> dict[str, Any]:
    layout, budget = memory.layout, memory.budget
    return {
        "memory_fits": memory.fits,
        "headroom_bytes": int(memory.min_headroom_bytes),
        "shortfall_bytes": int(max(0.0, -memory.min_headroom_bytes)),
        "kv_token_capacity": memory.kv_tokens * layout.copies,
        "kv_tokens_required": memory.required_tokens * layout.copies,
        "max_concurrency": (memory.kv_tokens // max(1, layout.context)) * layout.copies,
        "max_context_at_batch": _max_context(memory),
        "engine_mem_fraction": budget.mem_fraction,
        "engine_mem_fraction_flag": budget.flag,
        "engine_mem_fraction_auto": budget.auto,
        "engine_reserved_bytes": {k: int(v) for k, v in budget.reserved.items()},
        "ranks": _rank_rows(memory),
    }


def _host_fields(layout: Layout, node_ram: float) -> dict[str, Any]:
    nodes = host_ram(layout, node_ram)
    worst = max(nodes, key=lambda n: n.total)
    return {
        "host_ram_per_node_bytes": int(worst.total),
        "host_verdict": worst.verdict,
        "host_nodes": [_node_row(n) for n in nodes],
        "host_note": model_card_note(layout, nodes),
    }


def _performance_fields(topo: Topology, layout: Layout) -> dict[str, Any]:
    perf = performance_model(topo)
    per_second = perf.decode_tokens_per_second(layout.max_num_seqs, layout.context // 2)
    return {
        "decode_tokens_per_s": round(per_second, 1),
        "tokens_per_step": round(perf.tokens_per_step, 3),
        "assumptions": list(perf.assumptions),
        "decode_caveat": decode_caveat(topo),
    }


def _node_row(node: NodeRam) -> NodeMemory:
    return NodeMemory(
        node=node.node,
        gpus=node.gpus,
        page_cache_bytes=int(node.page_cache),
        engine_processes_bytes=int(node.engine_processes),
        ray_object_store_bytes=int(node.ray_object_store),
        pinned_offload_bytes=int(node.pinned_offload),
        os_reserve_bytes=int(node.os_reserve),
        required_bytes=int(node.required),
        total_bytes=int(node.total),
        node_ram_bytes=int(node.node_ram),
        verdict=node.verdict,
    )


def _suggestion_row(s: Suggestion) -> SuggestionOut:
    return SuggestionOut(
        change=s.change, gpus=s.layout.gpus, layout=s.describe(), headroom_bytes=int(s.headroom)
    )
