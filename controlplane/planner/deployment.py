"""`plan(topology, inventory) -> DeploymentPlan`: pure (no I/O, inputs never mutated).

A colocated topology is one engine group (plan.py `colocated_plan`); a prefill/decode
(PD) topology one group per pool (pd_plan.py), each pool planned by the same rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.planner.capacity import CapacityFigures
from controlplane.planner.inventory import Inventory
from controlplane.planner.models import DeploymentPlan
from controlplane.planner.pd_plan import pd_plan
from controlplane.planner.plan import colocated_plan
from controlplane.spec.pd_pools import pd_pools

if TYPE_CHECKING:
    from controlplane.spec import Topology

__all__ = ["plan"]


def plan(
    topology: Topology,
    inventory: Inventory,
    capacity: CapacityFigures | None = None,
) -> DeploymentPlan:
    """Place `topology` on `inventory`; raises PlanError when it cannot. `capacity`: the
    figures of a colocated replica when already computed (a PD plan sizes each pool)."""
    pools = pd_pools(topology)
    if pools is not None:
        return pd_plan(pools, inventory)
    return colocated_plan(topology, inventory, capacity)
