"""Plan: topology + inventory -> DeploymentPlan (pure), its summary and its diff."""

from controlplane.planner.capacity import CapacityFigures, capacity_figures
from controlplane.planner.deployment import plan
from controlplane.planner.fit import replicas_that_fit
from controlplane.planner.inventory import (
    DECLARED_MEMORY,
    Inventory,
    InventoryNode,
    accelerator_resource,
    embedded_inventory,
    from_ray_nodes,
)
from controlplane.planner.models import DeploymentPlan, EngineGroupPlan, RankPlan
from controlplane.planner.plan import PlanError
from controlplane.planner.show import diff_plans, plan_summary

__all__ = [
    "DECLARED_MEMORY",
    "CapacityFigures",
    "DeploymentPlan",
    "EngineGroupPlan",
    "Inventory",
    "InventoryNode",
    "PlanError",
    "RankPlan",
    "accelerator_resource",
    "capacity_figures",
    "diff_plans",
    "embedded_inventory",
    "from_ray_nodes",
    "plan",
    "plan_summary",
    "replicas_that_fit",
]
