"""Ray Serve config (the `serve deploy` YAML) rendered from a plan; never hand-edited.

Two applications per deployment: the router host (`<name>-router`) and the engine group of
this plan version (`<name>-<digest>`), both with `route_prefix: null` (clients reach the
router's own port; Serve's HTTP proxy is off). The deployment options are the ones `apply`
uses (controlplane.backends.ray.apps), so a rendered file and a live apply agree.
`reference_inventory` is the cluster a committed file is planned for: the topology's own
nodes with real GPUs and Ray's measured `memory`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import yaml

from controlplane.backends.ray.apps import (
    engine_app_name,
    engine_options,
    router_app_name,
    router_options,
)
from controlplane.planner import DeploymentPlan, Inventory, embedded_inventory, plan
from controlplane.planner.inventory import RAY_MEMORY

if TYPE_CHECKING:
    from controlplane.spec import Topology

ENGINE_IMPORT = "controlplane.backends.ray.apps:engine_builder"
ROUTER_IMPORT = "controlplane.backends.ray.apps:router_builder"


def reference_inventory(topology: Topology) -> Inventory:
    """The topology's own nodes as a real GPU cluster (deterministic; for committed files)."""
    declared = embedded_inventory(topology)
    return Inventory(nodes=declared.nodes, memory_resource=RAY_MEMORY, simulated_gpus=False)


def reference_plan(topology: Topology) -> DeploymentPlan:
    return plan(topology, reference_inventory(topology))


def ray_serve_config(deployment: DeploymentPlan) -> dict[str, Any]:
    """The Serve config as plain data (pure)."""
    data = deployment.to_data()
    data.pop("origin", None)  # the file's header names it; keeps renders path-independent
    return {
        "proxy_location": "Disabled",
        "http_options": {"host": "127.0.0.1"},
        "applications": [
            {
                "name": router_app_name(deployment.name),
                "route_prefix": None,
                "import_path": ROUTER_IMPORT,
                "args": {"plan": data, "port": deployment.router.port},
                "deployments": [router_options(deployment)],
            },
            {
                "name": engine_app_name(deployment),
                "route_prefix": None,
                "import_path": ENGINE_IMPORT,
                "args": {"plan": copy.deepcopy(data)},  # no YAML anchors between apps
                "deployments": [engine_options(deployment, group=g) for g in deployment.groups],
            },
        ],
    }


def render_yaml(deployment: DeploymentPlan, source: str) -> str:
    header = (
        f"# Ray Serve config for `{deployment.name}`, rendered from {source} (plan"
        f" {deployment.digest()}).\n# Do not edit: `glmctl render {source} --target ray`"
        " writes it. Needs GLMCTL_REDIS_URL on the cluster.\n"
    )
    body = yaml.safe_dump(ray_serve_config(deployment), sort_keys=False, width=100)
    return header + body
