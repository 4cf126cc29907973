"""Host (server) RAM per node: what loading and running one replica takes.

Per node:
- page cache: the engines mmap the safetensors shards; a rank slices its part out of every
  tensor of its layers, which pages in the whole tensor in practice (column slices span
  every page), so a node caches the checkpoint bytes of the pipeline stages it hosts;
- engine processes: one worker per GPU (CUDA runtime, torch, NCCL) and one frontend per
  node (HTTP server, tokenizer, detokenizer);
- the Ray object store (plasma shared memory; Ray's default is 30% of RAM, at most 200 GB);
- pinned host memory for vLLM `--cpu-offload-gb`, seen to take about 1.9x the request;
- the operating system and node agents.
Page cache is reclaimable: a node short of it still loads, re-reading shards from disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controlplane.capacity import constants as c
from controlplane.capacity.layout import Layout
from controlplane.capacity.weights import checkpoint_bytes, stage_layers
from controlplane.catalog import GIB


@dataclass(frozen=True)
class NodeRam:
    """Host RAM one node of a replica needs, by use, in bytes."""

    node: int
    gpus: int
    page_cache: float
    engine_processes: float
    ray_object_store: float
    pinned_offload: float
    os_reserve: float
    node_ram: float

    @property
    def required(self) -> float:
        """RAM that cannot be reclaimed: processes, object store, pinned memory, OS."""
        return self.engine_processes + self.ray_object_store + self.pinned_offload + self.os_reserve

    @property
    def total(self) -> float:
        """Everything, page cache of the node's checkpoint share included."""
        return self.required + self.page_cache

    @property
    def verdict(self) -> str:
        if self.required > self.node_ram:
            return "fails"
        return "ok" if self.total <= self.node_ram else "slow-load"


def ray_object_store_bytes(node_ram: float) -> float:
    """Ray's default object store: 30% of RAM, capped at 200 GB (ray_constants)."""
    return min(node_ram * c.RAY_OBJECT_STORE_FRACTION, float(c.RAY_OBJECT_STORE_CAP_BYTES))


def _stage_fraction(layout: Layout, node: int, nodes: int) -> float:
    """Fraction of the checkpoint's layers held by the pipeline stages on `node`."""
    if layout.pp == 1:
        return 1.0
    stages_per_node = max(1, layout.pp // nodes)
    ranges = stage_layers(layout.arch.num_layers, layout.pp)
    if layout.pp >= nodes:
        first = node * stages_per_node
        held = ranges[first : first + stages_per_node]
    else:  # a stage spans several nodes: each of them reads the stage's layers
        held = (ranges[node * layout.pp // nodes],)
    layers = sum(end - start for start, end in held)
    return layers / layout.arch.num_layers


def host_ram(layout: Layout, node_ram: float = c.DEFAULT_NODE_RAM_BYTES) -> list[NodeRam]:
    """Host RAM per node of one replica of `layout` on nodes of `node_ram` bytes."""
    nodes = layout.nodes
    per_node = math.ceil(layout.gpus / nodes)
    checkpoint = checkpoint_bytes(layout.arch, layout.checkpoint_format)
    return [
        NodeRam(
            node=node,
            gpus=per_node,
            page_cache=checkpoint * _stage_fraction(layout, node, nodes),
            engine_processes=per_node * c.ENGINE_PROCESS_HOST_BYTES + c.ENGINE_FRONTEND_HOST_BYTES,
            ray_object_store=ray_object_store_bytes(node_ram),
            pinned_offload=per_node * layout.cpu_offload_gb * GIB * c.PINNED_HOST_OVERHEAD,
            os_reserve=float(c.OS_RESERVE_HOST_BYTES),
            node_ram=float(node_ram),
        )
        for node in range(nodes)
    ]


def card_reference_parts(node_ram: float = c.DEFAULT_NODE_RAM_BYTES) -> dict[str, float]:
    """What one 8-GPU node serving BF16 GLM-4.5 needs, by part: the case the card's 1 TB is
    about. `ray_object_store` is there only because glmctl runs the engines under Ray Serve:
    SGLang (or vLLM's multiprocessing executor) launched on its own has no object store."""
    from controlplane.catalog import Precision, find_model

    entry = find_model("glm-4.5")
    assert entry is not None
    gpus = c.CARD_NODE_GPUS
    return {
        "page_cache": checkpoint_bytes(entry.arch, Precision.BF16),
        "engine_processes": gpus * c.ENGINE_PROCESS_HOST_BYTES + c.ENGINE_FRONTEND_HOST_BYTES,
        "ray_object_store": ray_object_store_bytes(node_ram),
        "os_reserve": float(c.OS_RESERVE_HOST_BYTES),
    }


def card_reference_node_bytes(node_ram: float = c.DEFAULT_NODE_RAM_BYTES) -> float:
    """What one 8-GPU node serving BF16 GLM-4.5 needs under glmctl (Ray included)."""
    return sum(card_reference_parts(node_ram).values())


# GLM-4.5's architecture (GLM-4.5, -Air and their FP8 checkpoints share it): the only model
# whose card states a server-memory figure and engine commands glmctl compares against.
GLM45_MODEL_TYPE = "glm4_moe"


def is_glm45_family(layout: Layout) -> bool:
    """True for layouts of GLM-4.5-architecture models, whose model card these notes quote."""
    return layout.arch.model_type == GLM45_MODEL_TYPE


def model_card_note(layout: Layout, nodes: list[NodeRam]) -> str:
    """What this layout needs of each host, in one paragraph; for the GLM-4.5 family also what
    the model card's "more than 1 TB of server memory" covers (other cards state no figure)."""
    worst = max(nodes, key=lambda n: n.total)
    needs = _layout_needs(layout, worst)
    if not is_glm45_family(layout):
        return (
            "Each node mmaps the checkpoint shards of the layers it serves into page cache"
            f" while the engine workers and the OS run beside them. {needs}"
        )
    meets = "meets" if worst.node_ram > c.MODEL_CARD_HOST_RAM_BYTES else "does not meet"
    card = card_reference_parts()
    total = sum(card.values())
    return (
        "The model card asks for more than 1 TB of server memory so that loading works: each"
        " node mmaps the safetensors shards of the layers it serves into page cache while the"
        " engine workers and the OS run beside them. BF16 GLM-4.5 on one 8-GPU node comes to"
        f" about {total / 1e12:.2f} TB under glmctl (the card's figure): page cache"
        f" {card['page_cache'] / 1e9:.0f} GB,"
        f" engine workers {card['engine_processes'] / 1e9:.0f} GB, OS"
        f" {card['os_reserve'] / 1e9:.0f} GB, and Ray's object store"
        f" {card['ray_object_store'] / 1e9:.0f} GB, which is Ray's, not the engine's: SGLang"
        " launched on its own, as in the card's commands, has no object store and needs about"
        f" {(total - card['ray_object_store']) / 1e12:.2f} TB. {needs} The node {meets} the"
        " card's 1 TB."
    )


def _layout_needs(layout: Layout, worst: NodeRam) -> str:
    """The busiest node's needs by part and the verdict, for any model."""
    checkpoint = checkpoint_bytes(layout.arch, layout.checkpoint_format)
    outcome = {
        "ok": "everything fits, page cache included",
        "slow-load": "the page cache does not all fit, so loading re-reads shards from disk",
        "fails": "even the memory that cannot be reclaimed does not fit",
    }[worst.verdict]
    return (
        f"This layout needs {worst.total / 1e9:.0f} GB on its busiest node: page cache"
        f" {worst.page_cache / 1e9:.0f} GB (of a {checkpoint / 1e9:.0f} GB checkpoint),"
        f" {worst.gpus} engine worker(s) {worst.engine_processes / 1e9:.0f} GB, Ray object store"
        f" {worst.ray_object_store / 1e9:.0f} GB, pinned offload"
        f" {worst.pinned_offload / 1e9:.0f} GB, OS {worst.os_reserve / 1e9:.0f} GB. On a"
        f" {worst.node_ram / 1e12:.2f} TB node {outcome}."
    )
