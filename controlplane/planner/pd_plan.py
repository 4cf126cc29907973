"""The plan of a prefill/decode (PD) topology: one engine group per pool (pure).

Each pool (spec/pd_pools.py: the topology with the pool's fields laid over it, resolved)
is planned exactly as a colocated topology's group is (capacity, bundles, bounds, drain),
named `<name>-prefill` / `<name>-decode`, with `pd` set and the launch commands of
engines/pd_args.py: the real engine's PD flags (checked by the engines' parsers), or the
simulator with `--pd-role`. The KV handshake port is the `{bootstrap_port}` placeholder
the rank worker fills with a free port of its node (many replicas share one host).

Placement: the decode pool is planned on the inventory left once the prefill pool's
initial replicas are placed (`reserve`), so `apply` never promises GPUs twice. Both pools
claim the topology's GPU type, so they land on the same kind of nodes of one cluster; the
transfer network itself (RDMA devices, link speed) is what the engines are told
(`--disaggregation-ib-device`, UCX_NET_DEVICES). Ray cannot pin two placement groups to
one RDMA fabric beyond that; docs/guides/disaggregation.md says so.
"""

from __future__ import annotations

from functools import partial

from controlplane.engines import LaunchCommand, LaunchContext
from controlplane.engines.base import BOOTSTRAP_PORT
from controlplane.engines.pd_args import pd_command
from controlplane.planner.capacity import capacity_figures
from controlplane.planner.fit import bundles_on
from controlplane.planner.inventory import DECLARED_MEMORY, GIB, Inventory, InventoryNode
from controlplane.planner.models import DeploymentPlan, EngineGroupPlan
from controlplane.planner.plan import engine_group, plan_warnings, require_fit, router_plan
from controlplane.spec.pd_pools import ROLES, PdPools
from controlplane.spec.topology import Topology

__all__ = ["pd_plan", "reserve"]


def pd_plan(pools: PdPools, inventory: Inventory) -> DeploymentPlan:
    """Both pools of `pools` on `inventory`; PlanError (naming the pool) when one does not fit."""
    topology = pools.topology
    groups: list[tuple[Topology, EngineGroupPlan]] = []
    capacity: dict[str, object] = {}
    left = inventory
    for role in ROLES:
        pool = pools.prefill if role == "prefill" else pools.decode
        figures = capacity_figures(pool)
        require_fit(pool, figures)
        command = partial(_command, pools, role)
        group = engine_group(pool, left, figures, name=pool.name, pd=role, command=command)
        left = reserve(left, group, group.replicas.initial)
        groups.append((pool, group))
        capacity[role] = {**figures.summary, "source": figures.source}
    return DeploymentPlan(
        name=topology.name,
        origin=topology.origin,
        spec=topology.spec.model_dump(mode="json", by_alias=True),
        groups=tuple(group for _, group in groups),
        router=router_plan(topology, groups[0][1].simulated),
        capacity=capacity,
        warnings=plan_warnings(topology, groups),
    )


def _command(
    pools: PdPools, role: str, context: LaunchContext, simulate: bool
) -> LaunchCommand | None:
    return pd_command(pools, role, context, simulate=simulate, port=BOOTSTRAP_PORT)


def reserve(inventory: Inventory, group: EngineGroupPlan, count: int) -> Inventory:
    """`inventory` with `count` replicas of `group` placed (pure): each replica's bundles on
    distinct nodes of its GPU type, the node with the most room first, as
    `replicas_that_fit` counts them."""
    nodes = list(inventory.nodes)
    gpu = group.gpu_type if group.bundles[0].get("GPU") else None
    for _ in range(count):
        used: set[int] = set()
        for bundle in group.bundles:
            fitting = [
                i
                for i, n in enumerate(nodes)
                if i not in used and (gpu is None or n.gpu_type == gpu)
                if bundles_on(n, bundle, inventory) > 0
            ]
            if not fitting:
                return inventory.model_copy(update={"nodes": tuple(nodes)})
            best = max(fitting, key=lambda i: bundles_on(nodes[i], bundle, inventory))
            nodes[best] = _take(nodes[best], bundle, inventory)
            used.add(best)
    return inventory.model_copy(update={"nodes": tuple(nodes)})


def _take(node: InventoryNode, bundle: dict[str, float], inventory: Inventory) -> InventoryNode:
    unit = GIB if inventory.memory_resource == DECLARED_MEMORY else 1
    return node.model_copy(
        update={
            "gpus_free": node.gpus_free - int(bundle.get("GPU", 0)),
            "cpus_free": node.cpus_free - bundle.get("CPU", 0.0),
            "memory_bytes": node.memory_bytes - bundle.get(inventory.memory_resource, 0.0) * unit,
        }
    )
