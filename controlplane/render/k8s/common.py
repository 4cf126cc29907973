"""Names, labels and sizing constants shared by the KubeRay manifest builders (pure).

Every object of one deployment carries `app.kubernetes.io/instance: <name>`; the component
label (`ray`, `router`, `redis`) is what selectors, PodDisruptionBudgets and the Redis
NetworkPolicy match on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controlplane import __version__ as GLMCTL_VERSION
from controlplane.planner.models import DeploymentPlan

PART_OF = "glmctl"
RAY_COMPONENT = "ray"
ROUTER_COMPONENT = "router"
REDIS_COMPONENT = "redis"
REDIS_PORT = 6379
REDIS_PASSWORD_KEY = "password"  # key of the `<name>-redis` Secret the user creates
ROUTER_REDIS_DB = 1  # router state apart from Ray's GCS tables (database 0)
RAY_METRICS_PORT = 8080  # KubeRay's default `metrics-export-port`
RAY_VERSION = "2.60.0"  # the ray[serve] pin in pyproject.toml
GPU_TYPE_LABEL = "glmctl.io/gpu-type"  # node label the worker groups select on
GPU_RESOURCE = "nvidia.com/gpu"  # extended resource of NVIDIA's device plugin / GPU operator


@dataclass(frozen=True)
class K8sOptions:
    """Choices the plan does not make: images, where Redis is, monitoring objects.

    `external_redis`: `HOST:PORT` of a Redis outside the cluster; None renders a Redis
    StatefulSet. Either way its password comes from the Secret `<name>-redis` (key
    `password`), never from the manifests. `ray_image` / `router_image`: None derives
    `glmctl-<engine>:<glmctl>-<engine version>` and `glmctl:<glmctl>`.
    """

    ray_image: str | None = None
    router_image: str | None = None
    external_redis: str | None = None
    models_claim: str | None = None  # PVC holding the checkpoint; None: `<name>-models`

    def ray_image_for(self, plan: DeploymentPlan) -> str:
        group = plan.group
        return self.ray_image or f"glmctl-{group.engine}:{GLMCTL_VERSION}-{group.engine_version}"

    def router_image_for(self) -> str:
        return self.router_image or f"glmctl:{GLMCTL_VERSION}"


def labels(plan: DeploymentPlan, component: str) -> dict[str, str]:
    """Labels of every object (and pod) of `component` in this deployment."""
    return {
        "app.kubernetes.io/name": PART_OF,
        "app.kubernetes.io/instance": plan.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
    }


def selector(plan: DeploymentPlan, component: str) -> dict[str, str]:
    """The subset of `labels` that selectors match (stable across glmctl versions)."""
    return {
        "app.kubernetes.io/instance": plan.name,
        "app.kubernetes.io/component": component,
    }


def metadata(plan: DeploymentPlan, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": labels(plan, component)}


def redis_name(plan: DeploymentPlan) -> str:
    return f"{plan.name}-redis"


def router_name(plan: DeploymentPlan) -> str:
    return f"{plan.name}-router"


def redis_host(plan: DeploymentPlan, options: K8sOptions) -> str:
    """`host:port` of the Redis the routers, engines and Ray's GCS use."""
    return options.external_redis or f"{redis_name(plan)}:{REDIS_PORT}"


def redis_env(plan: DeploymentPlan, options: K8sOptions) -> list[dict[str, Any]]:
    """REDIS_PASSWORD from the Secret, then GLMCTL_REDIS_URL built from it by Kubernetes'
    own `$(VAR)` expansion: the URL never holds a value in the manifest."""
    return [
        {
            "name": "REDIS_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": redis_name(plan), "key": REDIS_PASSWORD_KEY}},
        },
        {
            "name": "GLMCTL_REDIS_URL",
            "value": f"redis://:$(REDIS_PASSWORD)@{redis_host(plan, options)}/{ROUTER_REDIS_DB}",
        },
    ]


def gib_quantity(nbytes: float) -> str:
    """A Kubernetes quantity in whole GiB, rounded up."""
    gib = 1024**3
    return f"{-(-int(nbytes) // gib)}Gi"
