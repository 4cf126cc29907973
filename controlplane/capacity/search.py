"""Search: every way to split a model over 1..N GPUs, evaluated, smallest feasible first.

Ranking: layouts the preflight rejects (an error) come after every layout it accepts, and
layouts it warns about after the clean ones, each with its findings shown; within a rank,
fewest GPUs first (`Candidate.sort_key`).

A split is tensor x pipeline x data-parallel attention; expert parallelism follows the
engines' need (block-FP8 experts that tensor parallelism cannot cut are placed whole, as
`resolve` does). Data parallelism without DP attention is not a bigger layout but more
replicas, so the search leaves it out. A replica fills whole nodes or fits in one.

Every split is checked with `FastCheck` (the memory model's sums, cached); the full
per-rank breakdown (`replica_memory`) is built only for the layouts returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from controlplane.capacity.engine_rules import memory_rule
from controlplane.capacity.fastcheck import FastCheck, SplitShape, model_cache
from controlplane.capacity.layout import Layout
from controlplane.capacity.memory import ReplicaMemory, replica_memory
from controlplane.capacity.preflight import Finding, flag_rank, layout_findings
from controlplane.catalog import FP8_BLOCK, Architecture, AttentionKind, Precision
from controlplane.spec.layout import moe_split_fails_fp8

MAX_GPUS = 64
POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)

__all__ = [
    "MAX_GPUS",
    "POWERS_OF_TWO",
    "Candidate",
    "FastCheck",
    "SplitShape",
    "any_fits",
    "apply_shape",
    "count_feasible",
    "layout_problems",
    "moe_split_fails_fp8",
    "placeable",
    "search",
    "shapes_for",
    "smallest_fitting",
    "splits",
]


@dataclass(frozen=True)
class Candidate:
    """One evaluated layout with its full memory breakdown and its preflight findings."""

    layout: Layout
    memory: ReplicaMemory
    findings: tuple[Finding, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return self.memory.fits

    @property
    def accepted(self) -> bool:
        """The preflight finds no error (warnings allowed)."""
        return flag_rank(self.findings) < 2

    @property
    def flags(self) -> tuple[str, ...]:
        """Finding codes, errors first: what the search shows beside a flagged layout."""
        ordered = sorted(self.findings, key=lambda f: f.severity.value)
        return tuple(f"{f.severity.value}:{f.code}" for f in ordered)

    @property
    def headroom_bytes(self) -> float:
        return self.memory.min_headroom_bytes

    def sort_key(self) -> tuple[int, int, int, int, int, float]:
        """Accepted before rejected (clean before warned), then fewest GPUs, fewest nodes,
        no pipeline, no DP attention, most headroom."""
        lay = self.layout
        return (flag_rank(self.findings), lay.gpus, lay.nodes, lay.pp, lay.dp, -self.headroom_bytes)


def default_ep(arch: Architecture, weight_format: Precision, moe_group: int) -> int:
    """1, or the whole MoE group when block-FP8 experts cannot be split by TP."""
    return moe_group if moe_split_fails_fp8(arch, weight_format, moe_group) else 1


def layout_problems(layout: Layout) -> list[str]:
    """Structural reasons the engines refuse a layout (no memory involved)."""
    dp = layout.dp if layout.dp_attention else 1
    shape = SplitShape(layout.tp, layout.pp, dp, layout.ep)
    return _problems(layout.arch, layout.checkpoint_format, shape)


def _problems(arch: Architecture, weight_format: Precision, shape: SplitShape) -> list[str]:
    problems = []
    tp, moe_group = shape.tp, shape.tp * shape.dp
    if arch.num_attention_heads % tp:
        problems.append(f"TP {tp} does not divide {arch.num_attention_heads} heads")
    kv = arch.num_kv_heads
    if arch.attention is AttentionKind.GQA and kv % tp and tp % kv:
        # SGLang and vLLM shard or replicate whole KV heads: one must divide the other.
        problems.append(f"TP {tp} and {kv} KV heads: neither divides the other")
    if shape.pp > arch.num_layers:
        problems.append(f"PP {shape.pp} exceeds {arch.num_layers} layers")
    if shape.dp > 1 and not arch.is_moe:
        problems.append("DP attention needs an MoE model")
    if not arch.is_moe:
        if shape.ep > 1:
            problems.append("expert parallelism needs an MoE model")
        return problems
    if shape.ep > 1 and (arch.num_routed_experts % shape.ep or moe_group % shape.ep):
        problems.append(
            f"EP {shape.ep} must divide {arch.num_routed_experts} experts and the"
            f" {moe_group} MoE ranks"
        )
    elif moe_split_fails_fp8(arch, weight_format, moe_group // shape.ep):
        problems.append(
            f"block-FP8 experts: {arch.moe_intermediate_size} / TP {moe_group // shape.ep}"
            f" is not a multiple of {FP8_BLOCK}"
        )
    return problems


def _valid(arch: Architecture, weight_format: Precision, shape: SplitShape) -> bool:
    """`not _problems(...)` without building the messages (the search's inner loop)."""
    tp, moe_group = shape.tp, shape.tp * shape.dp
    kv = arch.num_kv_heads
    if arch.attention is AttentionKind.GQA and kv % tp and tp % kv:
        return False
    if shape.pp > arch.num_layers or (shape.dp > 1 and not arch.is_moe):
        return False
    if not arch.is_moe:
        return shape.ep == 1
    if arch.num_routed_experts % shape.ep or moe_group % shape.ep:
        return False
    return not moe_split_fails_fp8(arch, weight_format, moe_group // shape.ep)


def placeable(gpus: int, per_node: int) -> bool:
    """A replica fills whole nodes evenly, or fits in one node."""
    return gpus <= per_node or gpus % per_node == 0


def _split_shapes(
    arch: Architecture, weight_format: Precision, gpus: int, per_node: int
) -> tuple[SplitShape, ...]:
    if not placeable(gpus, per_node):
        return ()
    shapes = []
    heads = arch.num_attention_heads
    for tp in (d for d in range(1, gpus + 1) if gpus % d == 0 and heads % d == 0):
        rest = gpus // tp
        for pp in (d for d in range(1, rest + 1) if rest % d == 0):
            dp = rest // pp
            shape = SplitShape(tp, pp, dp, default_ep(arch, weight_format, tp * dp))
            if _valid(arch, weight_format, shape):
                shapes.append(shape)
    return tuple(shapes)


def shapes_for(
    base: Layout, gpus: int, table: dict[int, tuple[SplitShape, ...]] | None = None
) -> tuple[SplitShape, ...]:
    """Every structurally valid split of `base`'s model over exactly `gpus` GPUs (cached;
    `table` is `shape_table(base)` when the caller already holds it)."""
    if table is None:
        table = shape_table(base)
    found = table.get(gpus)
    if found is None:
        found = table[gpus] = _split_shapes(
            base.arch, base.checkpoint_format, gpus, base.gpus_per_node
        )
    if memory_rule(base).one_node_no_pp:
        # TensorRT-LLM's matrix has no PP for the GLM models, and glmctl starts no
        # multi-node TensorRT-LLM replica (catalog/trtllm_matrix.py): TP within one node.
        return tuple(s for s in found if s.pp == 1 and gpus <= base.gpus_per_node)
    return found


def shape_table(base: Layout) -> dict[int, tuple[SplitShape, ...]]:
    """The cache of `shapes_for` for `base`'s model, node size and checkpoint format."""
    return model_cache(base.arch, "shapes", base.checkpoint_format, base.gpus_per_node)


def apply_shape(base: Layout, shape: SplitShape) -> Layout:
    return base.with_(tp=shape.tp, pp=shape.pp, dp=shape.dp, ep=shape.ep, dp_attention=shape.dp > 1)


def splits(base: Layout, gpus: int) -> Iterator[Layout]:
    """Every structurally valid split of `base`'s model over exactly `gpus` GPUs."""
    for shape in shapes_for(base, gpus):
        yield apply_shape(base, shape)


def search(base: Layout, counts: Iterable[int] = range(1, MAX_GPUS + 1)) -> list[Candidate]:
    """Feasible layouts over every GPU count in `counts`, best first (`Candidate.sort_key`):
    no layout the preflight rejects is ranked above one it accepts."""
    found = []
    check = FastCheck(base)
    for gpus in counts:
        for shape in shapes_for(base, gpus):
            if check.fits(shape):
                layout = apply_shape(base, shape)
                findings = tuple(layout_findings(layout))
                found.append(Candidate(layout, replica_memory(layout), findings))
    return sorted(found, key=Candidate.sort_key)


def count_feasible(base: Layout, counts: Iterable[int]) -> tuple[int, int]:
    """(layouts evaluated, layouts that fit) over `counts`, without building breakdowns."""
    evaluated = feasible = 0
    check = FastCheck(base)
    table = shape_table(base)
    for gpus in counts:
        shapes = shapes_for(base, gpus, table)
        evaluated += len(shapes)
        feasible += sum(map(check.fits, shapes))
    return evaluated, feasible


def smallest_fitting(base: Layout, counts: Iterable[int] = POWERS_OF_TWO) -> Candidate | None:
    """The best feasible layout at the first GPU count (in `counts` order) where one fits
    and the preflight accepts it (warnings allowed)."""
    for gpus in counts:
        found = search(base, (gpus,))
        if found and found[0].accepted:
            return found[0]
    return None


def any_fits(base: Layout, gpus: int) -> bool:
    """Whether any split of `base` over exactly `gpus` GPUs fits."""
    check = FastCheck(base)
    return any(check.fits(shape) for shape in shapes_for(base, gpus))
