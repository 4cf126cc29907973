"""NetworkPolicy of the Ray pods (pure): who may open which port of the head and workers.

An open pod network lets any pod reach the engines' HTTP ports (requests without an API
key) and Ray's dashboard job API on 8265 (run code in a Ray pod, read its Redis password).
So the Ray pods of one deployment accept:
- from each other: every port (GCS, raylets, object manager, workers, dashboard, and the
  rendezvous of a multi-node replica use ports Ray picks at run time);
- from this deployment's routers: the engines' HTTP port only, and under
  `router.policy: precise_prefix` the range the engines' KV-event PUB and replay ports
  are picked from at run time (engines/kv_events_args.py `KV_PORT_RANGE`);
- from the KubeRay operator (any namespace): the head's dashboard and Serve ports, which
  its RayService controller calls (Serve status; the proxy health that puts the head
  behind `<name>-serve-svc`, rayservice_controller.go in KubeRay v1.7.0);
- from the monitoring namespace (Prometheus): Ray's and the engines' metrics ports.
Kubelet probes and `kubectl port-forward` are not pod-network traffic and stay possible.
The routers are the deployment's entry point and take traffic from anywhere; Redis has
its own policy (services.redis_network_policy).
"""

from __future__ import annotations

from typing import Any

from controlplane.engines.kv_events_args import KV_PORT_RANGE, plan_feed_count
from controlplane.planner.models import DeploymentPlan
from controlplane.render.k8s.common import (
    RAY_COMPONENT,
    RAY_METRICS_PORT,
    ROUTER_COMPONENT,
    kubernetes,
    metadata,
    selector,
)
from controlplane.render.k8s.worker_pod import ENGINE_HTTP_PORT

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace since k8s 1.22
# The operator pod's label in KubeRay's Helm chart (kuberay-operator's nameOverride).
KUBERAY_OPERATOR = {"app.kubernetes.io/name": "kuberay-operator"}
DASHBOARD_PORT, SERVE_PORT = 8265, 8000


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def ray_network_policy(plan: DeploymentPlan) -> dict[str, Any]:
    """Ingress rules of the head and worker pods (see the module docstring)."""
    ray = {"podSelector": {"matchLabels": selector(plan, RAY_COMPONENT)}}
    routers = {"podSelector": {"matchLabels": selector(plan, ROUTER_COMPONENT)}}
    operator = {"namespaceSelector": {}, "podSelector": {"matchLabels": KUBERAY_OPERATOR}}
    monitoring = {
        "namespaceSelector": {
            "matchLabels": {NAMESPACE_NAME_LABEL: kubernetes(plan).monitoring_namespace}
        }
    }
    router_ports = _tcp(ENGINE_HTTP_PORT)
    if plan_feed_count(plan):  # the engines publish KV events to the routers
        low, high = KV_PORT_RANGE
        router_ports.append({"protocol": "TCP", "port": low, "endPort": high})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(plan, f"{plan.name}-ray", RAY_COMPONENT),
        "spec": {
            "podSelector": {"matchLabels": selector(plan, RAY_COMPONENT)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [ray]},
                {"from": [routers], "ports": router_ports},
                {"from": [operator], "ports": _tcp(DASHBOARD_PORT, SERVE_PORT)},
                {"from": [monitoring], "ports": _tcp(RAY_METRICS_PORT, ENGINE_HTTP_PORT)},
            ],
        },
    }
