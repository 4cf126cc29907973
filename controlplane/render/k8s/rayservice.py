"""The RayService of one deployment: Ray head, one worker group per GPU node type, and
`serveConfigV2` with the plan's engine application (pure).

What runs where (anchors: shared/reference/operations-anchors.md, section B):
- one worker pod = one node of a replica; a group holds `replicas.max` replicas of
  `nodes` pods each (`numOfHosts: nodes`, so a multi-node replica's pods come and go as a
  unit), and Serve's STRICT_SPREAD placement group puts one bundle (node rank) per pod;
- the router is its own Deployment (services.py): `serveConfigV2` carries only the
  engine application; Serve's proxy stays on the head and serves no route;
- Ray's GCS keeps its tables in the same Redis as the routers (fault tolerance: a new
  head finds the running applications again).
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

from controlplane.backends.ray.apps import engine_options
from controlplane.capacity.constants import DEFAULT_NODE_RAM_BYTES
from controlplane.capacity.host import ray_object_store_bytes
from controlplane.planner.models import DeploymentPlan, EngineGroupPlan
from controlplane.render.k8s.common import (
    GPU_RESOURCE,
    GPU_TYPE_LABEL,
    RAY_COMPONENT,
    RAY_METRICS_PORT,
    RAY_VERSION,
    REDIS_PASSWORD_KEY,
    K8sOptions,
    gib_quantity,
    labels,
    metadata,
    redis_env,
    redis_host,
    redis_name,
)
from controlplane.render.ray_serve import ENGINE_IMPORT

# Head pod: GCS, the Serve controller and the dashboard; it runs no engine (num-cpus 0
# keeps Ray from scheduling work there).
HEAD_CPUS = 4
HEAD_MEMORY = "16Gi"
# Worker pod CPUs per GPU: the engine's GPU worker process, tokenizer / detokenizer and
# NCCL proxy threads (an 8-GPU Hopper server has 112 or more cores; 8 per GPU leaves room).
CPUS_PER_GPU = 8
CPU_ENGINE_CPUS = 4  # a CPU-only engine (vLLM's CPU build) in one pod
# NCCL's shared-memory transport and proxy buffers live in /dev/shm besides Ray's object
# store; SGLang's `docker run` examples give containers `--shm-size 32g`.
NCCL_SHM_BYTES = 32 * 1024**3
MODELS_PATH = "/models"
ENGINE_ENV = {
    # The checkpoint is staged on the models volume: no hub downloads from GPU pods.
    "HF_HOME": MODELS_PATH,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # Pod network: NCCL's bootstrap and socket transport on the pod's interface (an
    # RDMA fabric is found by NCCL itself when the pod is given its devices).
    "NCCL_SOCKET_IFNAME": "eth0",
    "NCCL_DEBUG": "WARN",
    "RAY_USAGE_STATS_ENABLED": "0",
}
RAY_PORTS = (("gcs", 6379), ("dashboard", 8265), ("client", 10001), ("serve", 8000))


def serve_config(plan: DeploymentPlan) -> dict[str, Any]:
    """`serveConfigV2`: the engine application exactly as `glmctl render --target ray`
    and `apply` build it; GLMCTL_REDIS_URL comes from the pod's environment."""
    from controlplane.render.ray_serve import ray_serve_config

    engine_app = ray_serve_config(plan)["applications"][1]
    assert engine_app["import_path"] == ENGINE_IMPORT
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "0.0.0.0", "port": 8000},
        "applications": [engine_app],
    }


def group_name(group: EngineGroupPlan) -> str:
    """Worker group name per GPU node type, e.g. `h100-x8` (DNS label characters)."""
    kind = "cpu" if not _gpus(group) else group.gpu_type.lower()
    return f"{kind}-x{_gpus(group)}".replace("_", "-")


def _gpus(group: EngineGroupPlan) -> int:
    return int(group.bundles[0].get("GPU", 0))


def _node_memory(group: EngineGroupPlan) -> float:
    """Host RAM one node of a replica needs (the calculator's figure, in the bundles)."""
    return max(b.get("memory", 0.0) for b in group.bundles)


def object_store_bytes() -> int:
    """The object store the host-RAM calculator counted (Ray's default on its node)."""
    return int(ray_object_store_bytes(DEFAULT_NODE_RAM_BYTES))


def _container(
    name: str, image: str, env: list[dict[str, Any]], ports: tuple[str, ...], **extra: Any
) -> dict[str, Any]:
    named = [{"name": n, "containerPort": p} for n, p in RAY_PORTS if n in ports]
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "ports": [*named, {"name": "metrics", "containerPort": RAY_METRICS_PORT}],
        **extra,
    }


def head_group(plan: DeploymentPlan, options: K8sOptions) -> dict[str, Any]:
    env = [*redis_env(plan, options), {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"}]
    resources = {"cpu": str(HEAD_CPUS), "memory": HEAD_MEMORY}
    container = _container(
        "ray-head",
        options.ray_image_for(plan),
        env,
        ports=("gcs", "dashboard", "client", "serve"),
        resources={"requests": resources, "limits": resources},
    )
    return {
        "rayStartParams": {"num-cpus": "0", "num-gpus": "0", "dashboard-host": "0.0.0.0"},
        "template": {
            "metadata": {"labels": labels(plan, RAY_COMPONENT)},
            "spec": {"containers": [container]},
        },
    }


def worker_group(
    plan: DeploymentPlan, group: EngineGroupPlan, options: K8sOptions
) -> dict[str, Any]:
    """One worker group: `nodes` pods per replica, up to `replicas.max` replicas."""
    gpus = _gpus(group)
    memory = _node_memory(group)
    store = object_store_bytes()
    shm = gib_quantity(store + NCCL_SHM_BYTES)
    cpus = CPUS_PER_GPU * gpus if gpus else CPU_ENGINE_CPUS
    start: dict[str, str] = {
        "num-cpus": str(cpus),
        "num-gpus": str(gpus),
        "memory": str(math.ceil(memory)),
        "object-store-memory": str(store),
    }
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": str(cpus), "memory": gib_quantity(memory)},
        "limits": {"cpu": str(cpus), "memory": gib_quantity(memory)},
    }
    pod: dict[str, Any] = {}
    if gpus:
        # Ray detects the GPU model too; declaring it keeps the plan's bundles placeable
        # where detection names it differently.
        start["resources"] = json.dumps({f"accelerator_type:{group.gpu_type}": 1})
        resources["requests"][GPU_RESOURCE] = str(gpus)
        resources["limits"][GPU_RESOURCE] = str(gpus)
        pod["nodeSelector"] = {GPU_TYPE_LABEL: group.gpu_type}
        pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    env = [*redis_env(plan, options), *({"name": k, "value": v} for k, v in ENGINE_ENV.items())]
    container = _container(
        "ray-worker",
        options.ray_image_for(plan),
        env,
        ports=(),
        resources=resources,
        volumeMounts=[
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "models", "mountPath": MODELS_PATH, "readOnly": True},
        ],
    )
    drain_s = engine_options(plan)["graceful_shutdown_timeout_s"]
    pod.update(
        {
            "containers": [container],
            # Serve drains a replica first (graceful_shutdown_timeout_s); the pod must outlive it.
            "terminationGracePeriodSeconds": int(drain_s) + 30,
            "volumes": [
                {
                    "name": "dshm",
                    "emptyDir": {"medium": "Memory", "sizeLimit": shm},
                },
                {
                    "name": "models",
                    "persistentVolumeClaim": {
                        "claimName": options.models_claim or f"{plan.name}-models",
                        "readOnly": True,
                    },
                },
            ],
        }
    )
    bounds = group.replicas
    return {
        "groupName": group_name(group),
        "replicas": bounds.initial,
        "minReplicas": bounds.min,
        "maxReplicas": bounds.max,
        "numOfHosts": group.nodes,
        "rayStartParams": start,
        "template": {"metadata": {"labels": labels(plan, RAY_COMPONENT)}, "spec": pod},
    }


def rayservice(plan: DeploymentPlan, options: K8sOptions) -> dict[str, Any]:
    """The RayService object (KubeRay v1)."""
    autoscaled = any(g.autoscaling is not None for g in plan.groups)
    cluster: dict[str, Any] = {
        "rayVersion": RAY_VERSION,
        "enableInTreeAutoscaling": autoscaled,
        "gcsFaultToleranceOptions": {
            "redisAddress": redis_host(plan, options),
            "redisPassword": {
                "valueFrom": {"secretKeyRef": {"name": redis_name(plan), "key": REDIS_PASSWORD_KEY}}
            },
        },
        "headGroupSpec": head_group(plan, options),
        "workerGroupSpecs": [worker_group(plan, g, options) for g in plan.groups],
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": metadata(plan, plan.name, RAY_COMPONENT),
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config(plan), sort_keys=False, width=100),
            "rayClusterConfig": cluster,
        },
    }
