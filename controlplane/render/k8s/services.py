"""Redis, the router Deployment and Service, PodDisruptionBudgets and the Redis
NetworkPolicy of one deployment (pure: plan -> manifest dicts).

Redis holds the routers' shared state and Ray's GCS tables. Its password lives only in the
Secret `<name>-redis` (key `password`) that the user creates; pods read it through
`secretKeyRef` and Kubernetes expands it into the URL (common.redis_env). External
endpoints' keys reach the router the same way (`external_key_env`): never a value.
"""

from __future__ import annotations

from typing import Any

from controlplane.planner.models import DeploymentPlan
from controlplane.render.k8s.common import (
    RAY_COMPONENT,
    REDIS_COMPONENT,
    REDIS_PASSWORD_ENV,
    REDIS_PORT,
    ROUTER_COMPONENT,
    K8sOptions,
    kubernetes,
    labels,
    metadata,
    redis_env,
    redis_name,
    router_name,
    selector,
)
from controlplane.router.config import RouterConfig
from controlplane.router.external import ExternalEndpoint, secret_env_name
from controlplane.router.limits import RequestLimits
from controlplane.router.state import StateConfig
from controlplane.store.redis import router_namespace

REDIS_IMAGE = "redis:7.4"
REDIS_STORAGE = "8Gi"  # append-only file of router state and GCS tables: megabytes in practice
REDIS_RESOURCES = {"cpu": "1", "memory": "2Gi"}
ROUTER_RESOURCES = {"cpu": "2", "memory": "2Gi"}


def redis_objects(plan: DeploymentPlan, options: K8sOptions) -> list[dict[str, Any]]:
    """A one-replica Redis StatefulSet with a volume, and its Service; none when external."""
    if options.external_redis:
        return []
    name = redis_name(plan)
    container = {
        "name": "redis",
        "image": REDIS_IMAGE,
        "env": redis_env(plan, options)[:1],
        "command": ["redis-server"],
        "args": [
            "--requirepass",
            f"$({REDIS_PASSWORD_ENV})",
            "--appendonly",
            "yes",
            "--dir",
            "/data",
        ],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
        "readinessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 5},
        "resources": {"requests": REDIS_RESOURCES, "limits": REDIS_RESOURCES},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(plan, name, REDIS_COMPONENT),
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": selector(plan, REDIS_COMPONENT)},
            "template": {
                "metadata": {"labels": labels(plan, REDIS_COMPONENT)},
                "spec": {"containers": [container]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": REDIS_STORAGE}},
                    },
                }
            ],
        },
    }
    service = _service(plan, name, REDIS_COMPONENT, "redis", REDIS_PORT)
    service["spec"]["clusterIP"] = "None"  # the StatefulSet's governing (headless) service
    return [statefulset, service]


def _service(
    plan: DeploymentPlan, name: str, component: str, port_name: str, port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(plan, name, component),
        "spec": {
            "selector": selector(plan, component),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        },
    }


def router_args(plan: DeploymentPlan) -> list[str]:
    """`python -m controlplane.router` arguments: one process per pod on all interfaces;
    the URL is expanded from the pod's environment by Kubernetes."""
    router = plan.router
    config = RouterConfig(
        redis_url="$(GLMCTL_REDIS_URL)",
        policy=router.policy,
        host="0.0.0.0",
        port=router.port,
        workers=1,
        max_queue_per_endpoint=router.max_queue_per_endpoint,
        session_header=router.session_header,
        state=StateConfig(namespace=router_namespace(plan.name)),
        auth=router.auth,
        limits=RequestLimits.from_dict(router.limits),
        external=tuple(ExternalEndpoint.from_dict(e.model_dump()) for e in router.external),
        overflow_at=router.overflow_at,
        models=(plan.group.served_model_name,),
        precise=router.precise,
    )
    return config.cli_args()


def external_secret_name(plan: DeploymentPlan) -> str:
    """The Secret holding `{env: NAME}` keys on Kubernetes (key NAME), created by the user."""
    return f"{plan.name}-external"


def external_key_env(plan: DeploymentPlan) -> list[dict[str, Any]]:
    """The router's variables for external endpoints' keys, each from a Secret: `{secret:
    name/key}` from that Secret (as GLMCTL_SECRET_<NAME>_<KEY>), `{env: NAME}` from the
    Secret `<deployment>-external`, key NAME."""
    env: dict[str, dict[str, Any]] = {}
    for external in plan.router.external:
        if external.key_secret:
            name, _, key = external.key_secret.partition("/")
            variable = secret_env_name(external.key_secret)
        elif external.key_env:
            name, key, variable = external_secret_name(plan), external.key_env, external.key_env
        else:
            continue
        ref = {"secretKeyRef": {"name": name, "key": key}}
        env[variable] = {"name": variable, "valueFrom": ref}
    return list(env.values())


KEYS_DIR = "/etc/glmctl/api-keys"


def api_keys_secret(plan: DeploymentPlan) -> str:
    """The Secret of the router's API keys (key: key name, value: the secret)."""
    return kubernetes(plan).api_keys_secret or f"{plan.name}-api-keys"


def keys_init_container(plan: DeploymentPlan, options: K8sOptions) -> dict[str, Any]:
    """Copies the keys of the Secret into Redis (hashes only) before the router starts;
    keys it put there earlier and the Secret no longer holds are revoked."""
    return {
        "name": "api-keys",
        "image": options.router_image_for(plan),
        "imagePullPolicy": "IfNotPresent",
        "command": ["glmctl", "keys", "sync", plan.name, "--from-dir", KEYS_DIR],
        "env": redis_env(plan, options),
        "volumeMounts": [{"name": "api-keys", "mountPath": KEYS_DIR, "readOnly": True}],
    }


def router_objects(plan: DeploymentPlan, options: K8sOptions) -> list[dict[str, Any]]:
    """Router Deployment (`router.replicas` pods, one process each) and its Service."""
    name = router_name(plan)
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5}
    container = {
        "name": "router",
        "image": options.router_image_for(plan),
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "controlplane.router"],
        "args": router_args(plan),
        "env": redis_env(plan, options) + external_key_env(plan),
        "ports": [{"name": "http", "containerPort": plan.router.port}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        "resources": {"requests": ROUTER_RESOURCES, "limits": ROUTER_RESOURCES},
    }
    pod: dict[str, Any] = {"containers": [container]}
    if plan.router.auth != "none":
        pod["initContainers"] = [keys_init_container(plan, options)]
        pod["volumes"] = [{"name": "api-keys", "secret": {"secretName": api_keys_secret(plan)}}]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(plan, name, ROUTER_COMPONENT),
        "spec": {
            "replicas": plan.router.processes,
            "selector": {"matchLabels": selector(plan, ROUTER_COMPONENT)},
            "template": {"metadata": {"labels": labels(plan, ROUTER_COMPONENT)}, "spec": pod},
        },
    }
    return [deployment, _service(plan, name, ROUTER_COMPONENT, "http", plan.router.port)]


def disruption_budgets(plan: DeploymentPlan) -> list[dict[str, Any]]:
    """Voluntary evictions (node drains) take one router pod, or one replica's pods, at a
    time: a node drain always proceeds, and never takes more than one replica away."""
    router = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(plan, router_name(plan), ROUTER_COMPONENT),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(plan, ROUTER_COMPONENT)},
        },
    }
    workers = {**selector(plan, RAY_COMPONENT), "ray.io/node-type": "worker"}
    engines = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(plan, f"{plan.name}-workers", RAY_COMPONENT),
        "spec": {
            # the pods of one replica (numOfHosts; a PD plan's widest pool)
            "maxUnavailable": max(g.nodes for g in plan.groups),
            "selector": {"matchLabels": workers},
        },
    }
    return [router, engines]


def redis_network_policy(plan: DeploymentPlan, options: K8sOptions) -> list[dict[str, Any]]:
    """Only this deployment's routers and Ray pods may open the Redis port."""
    if options.external_redis:
        return []
    allowed = [
        {"podSelector": {"matchLabels": selector(plan, component)}}
        for component in (ROUTER_COMPONENT, RAY_COMPONENT)
    ]
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(plan, redis_name(plan), REDIS_COMPONENT),
            "spec": {
                "podSelector": {"matchLabels": selector(plan, REDIS_COMPONENT)},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": allowed, "ports": [{"protocol": "TCP", "port": REDIS_PORT}]}],
            },
        }
    ]
