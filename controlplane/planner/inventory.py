"""The cluster inventory a plan is made against: Ray nodes, their GPUs, CPUs and memory.

An inventory is an argument to `plan()`, never read from a global. `from_ray_nodes` turns
`ray.nodes()` / available-resource dicts into one (pure); `embedded_inventory` describes the
local cluster glmctl would start for a topology (pure).

Declared vs real memory. Ray's built-in `memory` resource is measured from the machine a
raylet runs on. On the embedded default every simulated node is a raylet on this laptop, so
asking Ray for the calculator's host RAM (hundreds of GiB per node) would never schedule.
Each inventory therefore names the resource that stands for host RAM:
- a real cluster: Ray's `memory` (bytes, checked by Ray against real memory);
- the embedded cluster: the custom resource `host_memory_gib`, which each simulated node
  declares with the RAM of the server it stands for (`DECLARED_NODE_MEMORY_GIB`). Bundles
  ask for it, so Ray still refuses to place more than the declared servers hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from controlplane.catalog.gpus import GIB
from controlplane.local.cpu import targets_cpu

if TYPE_CHECKING:
    from controlplane.spec import Topology

RAY_MEMORY = "memory"  # Ray's own resource, in bytes
DECLARED_MEMORY = "host_memory_gib"  # the embedded cluster's declared host RAM, in GiB
# An 8-GPU H100/H200 server as the model card asks for (condition 5: host memory above 1 TB).
DECLARED_NODE_MEMORY_GIB = 2048
# CPUs each simulated node declares (Ray only counts them; the laptop has 2 real cores).
DECLARED_NODE_CPUS = 32
ACCELERATOR_PREFIX = "accelerator_type:"


def accelerator_resource(gpu_type: str) -> str:
    """Ray's per-node GPU-type resource name, e.g. `accelerator_type:H100`."""
    return f"{ACCELERATOR_PREFIX}{gpu_type}"


class InventoryNode(BaseModel):
    """One Ray node as the planner sees it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_id: str
    gpu_type: str | None = Field(None, description="Accelerator type; None: a CPU-only node.")
    gpus_total: int = 0
    gpus_free: int = 0
    cpus_total: float = 0.0
    cpus_free: float = 0.0
    memory_bytes: float = Field(0.0, description="Host RAM (declared or real) free on the node.")
    labels: dict[str, str] = Field(default_factory=dict)
    head: bool = False


class Inventory(BaseModel):
    """The nodes of one Ray cluster, and how host RAM is asked for there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nodes: tuple[InventoryNode, ...] = ()
    memory_resource: str = RAY_MEMORY
    simulated_gpus: bool = Field(
        False, description="GPUs are declared, not real: engines run as the simulator."
    )

    def gpus_free(self, gpu_type: str) -> int:
        return sum(n.gpus_free for n in self.nodes if n.gpu_type == gpu_type)

    def gpus_total(self, gpu_type: str) -> int:
        return sum(n.gpus_total for n in self.nodes if n.gpu_type == gpu_type)

    def memory_amount(self, nbytes: float) -> float:
        """`nbytes` of host RAM in this inventory's memory resource unit."""
        if self.memory_resource == DECLARED_MEMORY:
            return float(math.ceil(nbytes / GIB))
        return float(math.ceil(nbytes))


def embedded_inventory(
    topology: Topology,
    nodes: int | None = None,
    existing: Iterable[InventoryNode] = (),
) -> Inventory:
    """The inventory of the embedded cluster for `topology`: existing nodes plus new ones.

    New nodes hold `gpus.per_node` GPUs of the topology's type; their number is
    `cluster.nodes`, else enough for `replicas.max` replicas, minus matching nodes already
    present (so a second topology of the same GPU type reuses the first one's nodes).
    """
    existing = tuple(existing)
    spec = topology.spec
    cpu_only = targets_cpu(topology)  # vLLM's CPU build: no GPUs to declare
    per_node = 0 if cpu_only else spec.gpus.per_node
    gpu = None if cpu_only else topology.gpu.name
    wanted = nodes or spec.cluster.nodes or _nodes_for(topology)
    have = [n for n in existing if n.gpu_type == gpu and n.gpus_total == per_node]
    fresh = [
        InventoryNode(
            node_id=f"new-{(gpu or 'cpu').lower()}-{i}",
            gpu_type=gpu,
            gpus_total=per_node,
            gpus_free=per_node,
            cpus_total=DECLARED_NODE_CPUS,
            cpus_free=DECLARED_NODE_CPUS,
            memory_bytes=DECLARED_NODE_MEMORY_GIB * GIB,
            labels={"gpu_type": gpu or "none"},
        )
        for i in range(max(0, wanted - len(have)))
    ]
    return Inventory(
        nodes=existing + tuple(fresh), memory_resource=DECLARED_MEMORY, simulated_gpus=True
    )


def _nodes_for(topology: Topology) -> int:
    per_node = topology.spec.gpus.per_node
    if topology.spec.disaggregation is not None and per_node > 0:  # both pools
        return pd_nodes(topology, per_node)
    replicas = max(topology.spec.replicas.max or 1, 1)
    replicas_per_node = max(1, per_node // topology.gpus_per_node)
    if topology.nodes > 1:
        return topology.nodes * replicas
    return math.ceil(replicas / replicas_per_node)


def pd_nodes(topology: Topology, per_node: int) -> int:
    """Nodes of `per_node` GPUs that hold both pools at `replicas.max` (the embedded
    cluster's size): multi-node replicas take whole nodes; single-node replicas of both
    pools share nodes (the GLM-4.5 README's P TP4 + D TP4 on one 8-GPU node)."""
    from controlplane.spec.pd_pools import pd_pools

    pools = pd_pools(topology)
    assert pools is not None
    whole, shared = 0, 0
    for pool in (pools.prefill, pools.decode):
        replicas = max(pool.spec.replicas.max or 1, 1)
        if pool.nodes > 1 or per_node % pool.gpus_per_replica:
            per = max(1, per_node // pool.gpus_per_replica) if pool.nodes == 1 else 1
            whole += pool.nodes * math.ceil(replicas / per)
        else:
            shared += replicas * pool.gpus_per_replica
    return whole + math.ceil(shared / per_node)


def from_ray_nodes(
    nodes: Iterable[Mapping[str, Any]],
    available: Mapping[str, Mapping[str, float]],
    simulated_gpus: bool = False,
) -> Inventory:
    """Build an inventory from `ray.nodes()` and per-node available resources (pure)."""
    out: list[InventoryNode] = []
    declared = False
    for node in nodes:
        if not node.get("Alive", True):
            continue
        total = node.get("Resources", {})
        free = available.get(node["NodeID"], total)
        gpu_type = next(
            (k[len(ACCELERATOR_PREFIX) :] for k in total if k.startswith(ACCELERATOR_PREFIX)), None
        )
        declared = declared or DECLARED_MEMORY in total
        memory = (
            free.get(DECLARED_MEMORY, 0.0) * GIB
            if DECLARED_MEMORY in total
            else free.get(RAY_MEMORY, 0.0)
        )
        out.append(
            InventoryNode(
                node_id=node["NodeID"],
                gpu_type=gpu_type,
                gpus_total=int(total.get("GPU", 0)),
                gpus_free=int(free.get("GPU", 0)),
                cpus_total=float(total.get("CPU", 0)),
                cpus_free=float(free.get("CPU", 0)),
                memory_bytes=float(memory),
                labels=dict(node.get("Labels", {}) or {}),
                head="node:__internal_head__" in total,
            )
        )
    return Inventory(
        nodes=tuple(out),
        memory_resource=DECLARED_MEMORY if declared else RAY_MEMORY,
        simulated_gpus=simulated_gpus or declared,
    )


def release(
    inventory: Inventory, placements: Iterable[tuple[str, Mapping[str, float]]]
) -> Inventory:
    """The inventory as if the bundles `(node_id, resources)` were free again (pure).

    Re-planning a running deployment counts its own GPUs as available, so an unchanged
    spec plans to the same value (and `apply` finds nothing to do).
    """
    freed: dict[str, dict[str, float]] = {}
    for node_id, bundle in placements:
        acc = freed.setdefault(node_id, {})
        for key, value in bundle.items():
            acc[key] = acc.get(key, 0.0) + value
    unit = GIB if inventory.memory_resource == DECLARED_MEMORY else 1
    nodes = []
    for node in inventory.nodes:
        add = freed.get(node.node_id, {})
        nodes.append(
            node.model_copy(
                update={
                    "gpus_free": min(node.gpus_total, node.gpus_free + int(add.get("GPU", 0))),
                    "cpus_free": min(node.cpus_total, node.cpus_free + add.get("CPU", 0.0)),
                    "memory_bytes": node.memory_bytes
                    + add.get(inventory.memory_resource, 0.0) * unit,
                }
            )
        )
    return inventory.model_copy(update={"nodes": tuple(nodes)})
