"""The worker group of a RayService: one pod per node of a replica (pure).

What the pod needs besides Ray:
- readiness that holds with `proxy_location: HeadOnly`: KubeRay v1.7.0 adds the Serve
  proxy's `/-/healthz` to a RayService worker's readiness probe only when the container
  has none (common/pod.go initLivenessAndReadinessProbe), and a worker runs no proxy, so
  the pod sets the probe KubeRay would give it without that check (the raylet's health on
  the dashboard agent, `/api/healthz` since Ray 2.53);
- fixed, named engine ports (ENGINE_PORTS, read by RankWorker through settings) so that a
  PodMonitor scrapes the engines and a NetworkPolicy can name them;
- a preStop hook (backends/ray/prestop.py) that takes this pod's replicas out of every
  router's rotation and waits for their streams before Kubernetes stops Ray;
- the engine logs on `kubectl logs POD -c engine-logs` (a sidecar follows the log folder);
- the checkpoint volume (staging.py), GPUs by `nvidia.com/gpu.product` (gpus.py), and NCCL
  on the pod interface or an RDMA NIC.
"""

from __future__ import annotations

import json
import math
from typing import Any

from controlplane.backends.ray.apps import engine_options
from controlplane.capacity.constants import DEFAULT_NODE_RAM_BYTES
from controlplane.capacity.host import ray_object_store_bytes
from controlplane.planner.models import DeploymentPlan, EngineGroupPlan
from controlplane.render.k8s.common import (
    GPU_RESOURCE,
    RAY_COMPONENT,
    RAY_METRICS_PORT,
    K8sOptions,
    gib_quantity,
    kubernetes,
    labels,
    redis_env,
)
from controlplane.render.k8s.gpus import gpu_products, node_affinity
from controlplane.render.k8s.staging import MODELS_PATH, models_volume

# Worker pod CPUs per GPU: the engine's GPU worker process, tokenizer / detokenizer and
# NCCL proxy threads (an 8-GPU Hopper server has 112 or more cores; 8 per GPU leaves room).
CPUS_PER_GPU = 8
CPU_ENGINE_CPUS = 4  # a CPU-only engine (vLLM's CPU build) in one pod
# NCCL's shared-memory transport and proxy buffers live in /dev/shm besides Ray's object
# store; SGLang's `docker run` examples give containers `--shm-size 32g`.
NCCL_SHM_BYTES = 32 * 1024**3
LOG_DIR = "/var/log/glmctl"  # the engines' log files (EngineGroup's log_dir), an emptyDir
RAY_PORTS = (("gcs", 6379), ("dashboard", 8265), ("client", 10001), ("serve", 8000))
# One engine process per pod (one pod = one node of one replica), so its ports can be fixed.
ENGINE_HTTP_PORT = 8100
ENGINE_DIST_PORT = 8101
ENGINE_PORT_NAME = "engine-http"
POOL_LABEL = "glmctl.io/pool"  # Ray node label of a PD pool's worker pods (pool_selector)
ENGINE_PORTS = ((ENGINE_PORT_NAME, ENGINE_HTTP_PORT), ("engine-dist", ENGINE_DIST_PORT))
# KubeRay v1.7.0's own readiness probe of a Ray >= 2.53 node (utils/constant.go
# RayNodeHealthPath, DefaultDashboardAgentListenPort and DefaultReadinessProbe*).
RAYLET_HEALTH_PATH = "/api/healthz"
DASHBOARD_AGENT_PORT = 52365
PRESTOP_MARGIN_S = 30  # Ray's own shutdown after the preStop hook returns
FOLLOW_LOGS = (
    # Follow every engine log in LOG_DIR, including files created later, each line prefixed
    # with its file name (busybox or coreutils sh/tail/sed).
    f"cd {LOG_DIR}; seen=''; while :; do for f in *.log; do [ -e \"$f\" ] || continue;"
    ' case " $seen " in *" $f "*) ;; *) seen="$seen $f";'
    ' tail -n +1 -F "$f" | sed -u "s|^|[$f] |" & ;; esac; done; sleep 2; done'
)


def group_name(group: EngineGroupPlan) -> str:
    """Worker group name per GPU node type, e.g. `h100-x8` (DNS label characters); a PD
    pool's is prefixed with it (`prefill-h100-x4`): both pools may use the same nodes."""
    kind = "cpu" if not _gpus(group) else group.gpu_type.lower()
    name = f"{kind}-x{_gpus(group)}".replace("_", "-")
    return f"{group.pd}-{name}" if group.pd else name


def pool_selector(group: EngineGroupPlan) -> dict[str, str]:
    """The Ray node label of a PD pool's worker pods (KubeRay's group `labels`), which the
    pool's Serve deployment selects its bundles by: a prefill replica never lands in a
    decode pod. Empty for a colocated group."""
    return {POOL_LABEL: group.pd} if group.pd else {}


def _gpus(group: EngineGroupPlan) -> int:
    return int(group.bundles[0].get("GPU", 0))


def _node_memory(group: EngineGroupPlan) -> float:
    """Host RAM one node of a replica needs (the calculator's figure, in the bundles)."""
    return max(b.get("memory", 0.0) for b in group.bundles)


def object_store_bytes() -> int:
    """The object store the host-RAM calculator counted (Ray's default on its node)."""
    return int(ray_object_store_bytes(DEFAULT_NODE_RAM_BYTES))


def engine_env(plan: DeploymentPlan, group: EngineGroupPlan) -> dict[str, str]:
    """Engine variables: offline checkpoint, fixed ports, NCCL/Gloo on the pod network."""
    k8s = kubernetes(plan)
    env = {
        # The checkpoint is staged on the models volume: no hub downloads from GPU pods.
        "HF_HOME": MODELS_PATH,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GLMCTL_ENGINE_PORT": str(ENGINE_HTTP_PORT),
        "GLMCTL_DIST_PORT": str(ENGINE_DIST_PORT),
        # NCCL's bootstrap and socket transport, and torch.distributed's Gloo group (SGLang
        # and vLLM both open one), on the pod's interface rather than the first one found.
        "NCCL_SOCKET_IFNAME": k8s.socket_ifname,
        "GLOO_SOCKET_IFNAME": k8s.socket_ifname,
        "NCCL_DEBUG": "WARN",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if group.nodes > 1 and k8s.rdma is None:
        env["NCCL_IB_DISABLE"] = "1"  # no RDMA device in the pod: say so, do not probe
    if k8s.rdma is not None and k8s.rdma.hca:
        env["NCCL_IB_HCA"] = k8s.rdma.hca
    return env


def _resources(plan: DeploymentPlan, group: EngineGroupPlan) -> dict[str, dict[str, str]]:
    gpus = _gpus(group)
    cpus = CPUS_PER_GPU * gpus if gpus else CPU_ENGINE_CPUS
    memory = gib_quantity(_node_memory(group))
    out = {part: {"cpu": str(cpus), "memory": memory} for part in ("requests", "limits")}
    if gpus:
        for part in out.values():
            part[GPU_RESOURCE] = str(gpus)
    rdma = kubernetes(plan).rdma
    if rdma is not None:
        for part in out.values():
            part[rdma.resource] = str(rdma.count)
    return out


def _start_params(group: EngineGroupPlan) -> dict[str, str]:
    gpus = _gpus(group)
    start = {
        "num-cpus": str(CPUS_PER_GPU * gpus if gpus else CPU_ENGINE_CPUS),
        "num-gpus": str(gpus),
        "memory": str(math.ceil(_node_memory(group))),
        "object-store-memory": str(object_store_bytes()),
    }
    if gpus:
        # Ray detects the GPU model too; declaring it keeps the plan's bundles placeable
        # where detection names it differently.
        start["resources"] = json.dumps({f"accelerator_type:{group.gpu_type}": 1})
    return start


def drain_seconds(plan: DeploymentPlan, group: EngineGroupPlan | None = None) -> int:
    """Serve's graceful shutdown of a replica (peer wait + drain + stop), whole seconds."""
    return math.ceil(engine_options(plan, group=group)["graceful_shutdown_timeout_s"])


def _container(plan: DeploymentPlan, group: EngineGroupPlan, options: K8sOptions) -> dict[str, Any]:
    own = engine_env(plan, group)
    env = [*redis_env(plan, options), *({"name": k, "value": v} for k, v in own.items())]
    prestop = [
        "python3", "-m", "controlplane.backends.ray.prestop", plan.name,
        "--timeout", str(drain_seconds(plan)),
    ]  # fmt: skip
    container: dict[str, Any] = {
        "name": "ray-worker",
        "image": options.ray_image_for(plan),
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "ports": [
            *({"name": n, "containerPort": p} for n, p in ENGINE_PORTS),
            {"name": "metrics", "containerPort": RAY_METRICS_PORT},
        ],
        "readinessProbe": {
            "httpGet": {"path": RAYLET_HEALTH_PATH, "port": DASHBOARD_AGENT_PORT},
            "initialDelaySeconds": 10,
            "timeoutSeconds": 2,
            "periodSeconds": 5,
            "successThreshold": 1,
            "failureThreshold": 10,
        },
        "lifecycle": {"preStop": {"exec": {"command": prestop}}},
        "resources": _resources(plan, group),
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "models", "mountPath": MODELS_PATH, "readOnly": True},
            {"name": "logs", "mountPath": LOG_DIR},
        ],
    }
    if kubernetes(plan).rdma is not None:
        # RDMA verbs pin (lock) their buffers in memory.
        container["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    return container


def _log_sidecar(plan: DeploymentPlan, options: K8sOptions) -> dict[str, Any]:
    small = {"cpu": "100m", "memory": "64Mi"}
    return {
        "name": "engine-logs",
        "image": options.ray_image_for(plan),
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", FOLLOW_LOGS],
        "resources": {"requests": small, "limits": small},
        "volumeMounts": [{"name": "logs", "mountPath": LOG_DIR, "readOnly": True}],
    }


def worker_group(
    plan: DeploymentPlan, group: EngineGroupPlan, options: K8sOptions
) -> dict[str, Any]:
    """One worker group: `nodes` pods per replica, up to `replicas.max` replicas."""
    shm = gib_quantity(object_store_bytes() + NCCL_SHM_BYTES)
    pod: dict[str, Any] = {}
    if _gpus(group):
        products = gpu_products(group.gpu_type, kubernetes(plan).gpu_products)
        pod["affinity"] = node_affinity(products)
        pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    pod.update(
        {
            "containers": [_container(plan, group, options), _log_sidecar(plan, options)],
            # The preStop drain runs first and Serve's own graceful shutdown may follow.
            "terminationGracePeriodSeconds": drain_seconds(plan, group) + PRESTOP_MARGIN_S,
            "volumes": [
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
                models_volume(plan, options),
                {"name": "logs", "emptyDir": {}},
            ],
        }
    )
    bounds = group.replicas
    out = {
        "groupName": group_name(group),
        "replicas": bounds.initial,
        "minReplicas": bounds.min,
        "maxReplicas": bounds.max,
        "numOfHosts": group.nodes,
        "rayStartParams": _start_params(group),
        "template": {"metadata": {"labels": labels(plan, RAY_COMPONENT)}, "spec": pod},
    }
    pool = pool_selector(group)
    return {**out, "labels": pool} if pool else out
