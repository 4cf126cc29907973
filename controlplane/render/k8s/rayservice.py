"""The RayService of one deployment: Ray head, one worker group per engine group (per GPU
node type; a PD plan's two pools, each its own), and `serveConfigV2` with the plan's
engine application (pure; a PD plan's holds one deployment per pool).

What runs where (anchors: shared/reference/operations-anchors.md, section B):
- one worker pod = one node of a replica; a group holds `replicas.max` replicas of
  `nodes` pods each (`numOfHosts: nodes`, so a multi-node replica's pods come and go as a
  unit), and Serve's STRICT_SPREAD placement group puts one bundle (node rank) per pod
  (worker_pod.py);
- the router is its own Deployment (services.py): `serveConfigV2` carries only the
  engine application; Serve's proxy stays on the head (`HeadOnly`) and serves no route;
- Ray's GCS keeps its tables in the same Redis as the routers (fault tolerance: a new
  head finds the running applications again).

Updates without an outage: the engine application keeps one name (`<name>-engine`) and
its `args` leave out the replica counts, so a new `replicas.max` (or an autoscaler's
decision) changes only the deployment's options (`num_replicas` / `autoscaling_config`),
which Ray Serve applies in place; the RayCluster spec differs then only in the worker
groups' replicas / minReplicas / maxReplicas, which KubeRay leaves out of its cluster hash
(utils.GenerateHashWithoutReplicasAndWorkersToDelete), so no new cluster is started.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from controlplane.backends.ray.apps import engine_app_name, engine_options
from controlplane.planner.models import DeploymentPlan, EngineGroupPlan
from controlplane.render.k8s.common import (
    RAY_COMPONENT,
    RAY_METRICS_PORT,
    RAY_VERSION,
    REDIS_PASSWORD_KEY,
    K8sOptions,
    kubernetes,
    labels,
    metadata,
    redis_env,
    redis_host,
    redis_name,
)
from controlplane.render.k8s.worker_pod import LOG_DIR, RAY_PORTS, pool_selector, worker_group
from controlplane.render.ray_serve import ENGINE_IMPORT, ray_serve_config

# Head pod: GCS, the Serve controller and the dashboard; it runs no engine (num-cpus 0
# keeps Ray from scheduling work there).
HEAD_CPUS = 4
HEAD_MEMORY = "16Gi"
# A replica whose constructor fails (a node not ready, a slow volume, Redis restarting) is
# retried; each attempt backs off in EngineGroup (autoscale/restarts.py), and a real fault
# still stops after MAX_RESTARTS there. The embedded default keeps 1 (apply reports at once).
K8S_CONSTRUCTOR_RETRIES = 5
# Fields of a plan that hold replica counts; they live in the deployment's options.
SCALE_FREE_BOUNDS = {"initial": 1, "min": 1, "max": 1, "fits": 1}
RENDERED_ORIGIN = "glmctl render --target k8s"
SCALE_FREE_POLICY = {"min_replicas": 1, "max_replicas": 1, "initial_replicas": 1}


def engine_app_k8s_name(plan: DeploymentPlan) -> str:
    """The engine application's name on Kubernetes: one per deployment, for every version."""
    return f"{plan.name}-engine"


def scale_free_plan_data(plan: DeploymentPlan) -> dict[str, Any]:
    """The plan as the replicas' constructor argument, with every replica count replaced by
    SCALE_FREE_BOUNDS: the replicas never read them (the deployment options carry them), and
    an argument that changes would make Serve restart every replica."""
    data = copy.deepcopy(ray_serve_config(plan)["applications"][1]["args"]["plan"])
    # DeploymentPlan requires an origin; the path it was planned from is in the header.
    data["origin"] = RENDERED_ORIGIN
    spec_replicas = data["spec"].get("replicas")
    if isinstance(spec_replicas, dict):
        spec_replicas.update({k: SCALE_FREE_BOUNDS[k] for k in ("initial", "min", "max")})
    cluster = data["spec"].get("cluster")
    if isinstance(cluster, dict) and cluster.get("nodes") is not None:  # PD: unset
        # The embedded cluster's size, planned for `replicas.max`; a RayCluster's nodes
        # are its pods, so here it is one replica's.
        cluster["nodes"] = plan.group.nodes
    for group in data["groups"]:
        group["replicas"] = {**SCALE_FREE_BOUNDS}
        if group.get("autoscaling"):
            group["autoscaling"].update(SCALE_FREE_POLICY)
    return data


def engine_deployment_options(
    plan: DeploymentPlan, group: EngineGroupPlan | None = None
) -> dict[str, Any]:
    """An engine deployment's Serve options: apply's, with the stable application name in
    the autoscaling policy and retries for a transient start-up failure; a PD pool's
    bundles select its own worker group's pods (worker_pod.py `pool_selector`)."""
    options = engine_options(plan, group=group)
    options["max_constructor_retry_count"] = K8S_CONSTRUCTOR_RETRIES
    pool = pool_selector(group or plan.group)
    if pool:  # Ray 2.60 serve/api.py: one selector applies to every bundle
        options["placement_group_bundle_label_selector"] = [pool]
    auto = options.get("autoscaling_config")
    if auto is not None:
        kwargs = auto["policy"]["policy_kwargs"]
        assert kwargs["app"] == engine_app_name(plan)
        kwargs["app"] = engine_app_k8s_name(plan)
    return options


def serve_config(plan: DeploymentPlan) -> dict[str, Any]:
    """`serveConfigV2`: the engine application `apply` builds, under its stable name;
    GLMCTL_REDIS_URL / GLMCTL_REDIS_PASSWORD come from the pod's environment."""
    engine_app = ray_serve_config(plan)["applications"][1]
    assert engine_app["import_path"] == ENGINE_IMPORT
    app = {
        "name": engine_app_k8s_name(plan),
        "route_prefix": None,
        "import_path": ENGINE_IMPORT,
        "args": {
            "plan": scale_free_plan_data(plan),
            "app_name": engine_app_k8s_name(plan),
            "log_dir": LOG_DIR,
        },
        "deployments": [engine_deployment_options(plan, g) for g in plan.groups],
    }
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "0.0.0.0", "port": 8000},
        "applications": [app],
    }


def head_group(plan: DeploymentPlan, options: K8sOptions) -> dict[str, Any]:
    env = [*redis_env(plan, options), {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"}]
    resources = {"cpu": str(HEAD_CPUS), "memory": HEAD_MEMORY}
    named = [{"name": n, "containerPort": p} for n, p in RAY_PORTS]
    container = {
        "name": "ray-head",
        "image": options.ray_image_for(plan),
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "ports": [*named, {"name": "metrics", "containerPort": RAY_METRICS_PORT}],
        "resources": {"requests": resources, "limits": resources},
    }
    return {
        "rayStartParams": {"num-cpus": "0", "num-gpus": "0", "dashboard-host": "0.0.0.0"},
        "template": {
            "metadata": {"labels": labels(plan, RAY_COMPONENT)},
            "spec": {"containers": [container]},
        },
    }


def rayservice(plan: DeploymentPlan, options: K8sOptions) -> dict[str, Any]:
    """The RayService object (KubeRay v1)."""
    autoscaled = any(g.autoscaling is not None for g in plan.groups)
    password = {"secretKeyRef": {"name": redis_name(plan), "key": REDIS_PASSWORD_KEY}}
    cluster: dict[str, Any] = {
        "rayVersion": RAY_VERSION,
        "enableInTreeAutoscaling": autoscaled,
        "gcsFaultToleranceOptions": {
            "redisAddress": redis_host(plan, options),
            "redisPassword": {"valueFrom": password},
        },
        "headGroupSpec": head_group(plan, options),
        "workerGroupSpecs": [worker_group(plan, g, options) for g in plan.groups],
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": metadata(plan, plan.name, RAY_COMPONENT),
        "spec": {
            "upgradeStrategy": {"type": kubernetes(plan).upgrade_strategy.value},
            "serveConfigV2": yaml.safe_dump(serve_config(plan), sort_keys=False, width=100),
            "rayClusterConfig": cluster,
        },
    }
