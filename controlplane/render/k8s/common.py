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
from controlplane.spec.kubernetes import KubernetesSpec

PART_OF = "glmctl"
RAY_COMPONENT = "ray"
ROUTER_COMPONENT = "router"
REDIS_COMPONENT = "redis"
REDIS_PORT = 6379
REDIS_PASSWORD_KEY = "password"  # key of the `<name>-redis` Secret the user creates
# Not `REDIS_PASSWORD`: KubeRay v1.7.0 refuses that variable in the head pod when
# gcsFaultToleranceOptions is set and appends its own after the user's (validation.go,
# common/pod.go configureRedisFT); glmctl's settings read GLMCTL_REDIS_PASSWORD.
REDIS_PASSWORD_ENV = "GLMCTL_REDIS_PASSWORD"
ROUTER_REDIS_DB = 1  # router state apart from Ray's GCS tables (database 0)
RAY_METRICS_PORT = 8080  # KubeRay's default `metrics-export-port`
RAY_VERSION = "2.60.0"  # the ray[serve] pin in pyproject.toml
# Node label NVIDIA's GPU feature discovery (GPU operator) sets: the NVML device name with
# spaces as dashes; render/k8s/gpus.py maps glmctl's GPU names to it.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_RESOURCE = "nvidia.com/gpu"  # extended resource of NVIDIA's device plugin / GPU operator


@dataclass(frozen=True)
class K8sOptions:
    """Command-line overrides of the topology's `kubernetes:` section (spec/kubernetes.py).

    `external_redis`: `HOST:PORT` of a Redis outside the cluster; None renders a Redis
    StatefulSet. Either way its password comes from the Secret `<name>-redis` (key
    `password`), never from the manifests. `ray_image` / `router_image`: None takes the
    section's, else `glmctl-<engine>:<glmctl>-<engine version>` and `glmctl:<glmctl>`.
    """

    ray_image: str | None = None
    router_image: str | None = None
    external_redis: str | None = None
    models_claim: str | None = None  # PVC holding the checkpoint; None: the section's
    redis_tls: bool = False  # the external Redis speaks TLS (`rediss://`)

    def ray_image_for(self, plan: DeploymentPlan) -> str:
        return self.ray_image or kubernetes(plan).image or default_ray_image(plan)

    def router_image_for(self, plan: DeploymentPlan | None = None) -> str:
        own = kubernetes(plan).router_image if plan is not None else None
        return self.router_image or own or default_router_image()


def default_ray_image(plan: DeploymentPlan) -> str:
    """`glmctl-<engine>:<glmctl version>-<engine version>` (what `make images` tags)."""
    group = plan.group
    return f"glmctl-{group.engine}:{GLMCTL_VERSION}-{group.engine_version}"


def default_router_image() -> str:
    return f"glmctl:{GLMCTL_VERSION}"


def kubernetes(plan: DeploymentPlan) -> KubernetesSpec:
    """The topology's `kubernetes:` section (defaults when the topology has none)."""
    return KubernetesSpec.model_validate(plan.spec.get("kubernetes") or {})


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


def redis_url(plan: DeploymentPlan, options: K8sOptions) -> str:
    """glmctl's Redis URL without its password (settings add GLMCTL_REDIS_PASSWORD, quoted,
    so a password with `@` or `/` cannot break the URL); `rediss://` for a TLS Redis."""
    tls = options.redis_tls or kubernetes(plan).redis_tls
    scheme = "rediss" if options.external_redis and tls else "redis"
    return f"{scheme}://{redis_host(plan, options)}/{ROUTER_REDIS_DB}"


def redis_env(plan: DeploymentPlan, options: K8sOptions) -> list[dict[str, Any]]:
    """GLMCTL_REDIS_PASSWORD from the Secret and GLMCTL_REDIS_URL without it: no value of
    the password in the manifest, and no variable KubeRay owns."""
    secret = {"secretKeyRef": {"name": redis_name(plan), "key": REDIS_PASSWORD_KEY}}
    return [
        {"name": REDIS_PASSWORD_ENV, "valueFrom": secret},
        {"name": "GLMCTL_REDIS_URL", "value": redis_url(plan, options)},
    ]


def gib_quantity(nbytes: float) -> str:
    """A Kubernetes quantity in whole GiB, rounded up."""
    gib = 1024**3
    return f"{-(-int(nbytes) // gib)}Gi"
