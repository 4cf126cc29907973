"""prometheus-operator objects and the Grafana dashboards ConfigMap (pure).

ServiceMonitor: the routers' `/metrics`. Every router answers with the whole deployment's
numbers (merged through Redis), so the router pods are scraped as one target: the
relabelings point each pod's target at the router Service and drop the per-pod labels,
and Prometheus merges targets with identical labels into one scrape. `honorLabels`
keeps the router's own `endpoint` label (prometheus-operator's target label of the same
name would replace it). PodMonitors: Ray's metrics port on the Ray pods, and the engines'
fixed HTTP port (worker_pod.ENGINE_PORTS) on the worker pods, labelled by KubeRay's
replica name and host index (RayMultiHostIndexing, on by default in KubeRay v1.7.0) and,
on a PD pool's pods, the pool (`pd`, from the worker group's name).
`prometheus_rule` and `dashboards_configmap` wrap what the observability catalogue
produces (Prometheus rule files `{"groups": [...]}` and dashboard JSON by file name); they
take that data as arguments so this module needs nothing from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from controlplane.catalog.pd_metrics import PD_LABEL
from controlplane.errors import UserError
from controlplane.observe import catalog as cat
from controlplane.planner.models import DeploymentPlan
from controlplane.render.k8s.common import (
    RAY_COMPONENT,
    ROUTER_COMPONENT,
    metadata,
    router_name,
    selector,
)
from controlplane.render.k8s.worker_pod import ENGINE_PORT_NAME, group_name

SCRAPE_INTERVAL = "15s"
# Label Grafana's dashboard sidecar (kiwigrid k8s-sidecar, the Grafana Helm chart's
# default `sidecar.dashboards.label`) watches for.
GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"
CONFIGMAP_LIMIT_BYTES = 1024 * 1024  # Kubernetes refuses larger ConfigMaps
MONITORING = "monitoring"
RAY_JOB = "glmctl-ray"  # Ray's own metrics agent, one target per Ray pod
# KubeRay v1.7.0 pod labels (ray-operator/controllers/ray/utils/constant.go).
REPLICA_NAME_LABEL = "__meta_kubernetes_pod_label_ray_io_worker_group_replica_name"
HOST_INDEX_LABEL = "__meta_kubernetes_pod_label_ray_io_replica_host_index"
# KubeRay v1.7.0 labels every Ray pod with its worker group's name (`RayNodeGroupLabelKey`,
# ray-operator/controllers/ray/utils/constant.go; set in common/pod.go `labelPod`).
GROUP_LABEL = "__meta_kubernetes_pod_label_ray_io_group"


def _fixed(plan: DeploymentPlan, job: str) -> list[dict[str, Any]]:
    fixed = {"job": job, cat.DEPLOYMENT: plan.name, cat.MODEL: plan.group.served_model_name}
    return [
        {"action": "replace", "targetLabel": label, "replacement": value}
        for label, value in fixed.items()
    ]


def _from(source: str, target: str) -> dict[str, Any]:
    return {"action": "replace", "sourceLabels": [source], "targetLabel": target}


def target_labels(plan: DeploymentPlan, job: str) -> list[dict[str, Any]]:
    """Relabelings giving each Ray pod's series the catalogue's job and target labels
    (observe.catalog.TARGET_LABELS), as file-SD does on the embedded cluster: the replica
    is KubeRay's replica name (the head and single-host pods: the pod's name), the node
    rank KubeRay's host index (0 when absent)."""
    return [
        *_fixed(plan, job),
        _from("__meta_kubernetes_pod_name", cat.REPLICA),
        {**_from(REPLICA_NAME_LABEL, cat.REPLICA), "regex": "(.+)"},
        {"action": "replace", "targetLabel": cat.NODE_RANK, "replacement": "0"},
        {**_from(HOST_INDEX_LABEL, cat.NODE_RANK), "regex": "(.+)"},
    ]


def router_target_labels(plan: DeploymentPlan) -> list[dict[str, Any]]:
    """One target for all router pods: the Service's address and no per-pod labels."""
    service = {
        "action": "replace",
        "sourceLabels": ["__meta_kubernetes_service_name", "__meta_kubernetes_namespace"],
        "regex": "(.+);(.+)",
        "targetLabel": "__address__",
        "replacement": f"$1.$2.svc:{plan.router.port}",
    }
    return [
        *_fixed(plan, cat.JOB_ROUTER),
        service,
        {"action": "labeldrop", "regex": "pod|container|endpoint|instance"},
        {"action": "replace", "targetLabel": cat.REPLICA, "replacement": "router"},
        {"action": "replace", "targetLabel": cat.NODE_RANK, "replacement": "0"},
    ]


def service_monitor(plan: DeploymentPlan) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(plan, router_name(plan), ROUTER_COMPONENT),
        "spec": {
            "selector": {"matchLabels": selector(plan, ROUTER_COMPONENT)},
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": SCRAPE_INTERVAL,
                    "honorLabels": True,
                    "relabelings": router_target_labels(plan),
                }
            ],
        },
    }


def pool_labels(plan: DeploymentPlan) -> list[dict[str, Any]]:
    """A PD pool's engine pods get the target label `pd` (prefill | decode) from their
    worker group, as the embedded monitor's scrape targets do: vLLM's series name no pool,
    and the PD recording rules select pools by this label. None for a colocated plan."""
    return [
        {
            "action": "replace",
            "sourceLabels": [GROUP_LABEL],
            "regex": group_name(group),  # a DNS label: no regex metacharacter
            "targetLabel": PD_LABEL,
            "replacement": group.pd,
        }
        for group in plan.groups
        if group.pd
    ]


def _pod_endpoint(
    plan: DeploymentPlan, port: str, job: str, extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "port": port,
        "path": "/metrics",
        "interval": SCRAPE_INTERVAL,
        "honorLabels": True,
        "relabelings": [*target_labels(plan, job), *(extra or [])],
    }


def pod_monitor(plan: DeploymentPlan) -> dict[str, Any]:
    """Ray's metrics port on every Ray pod."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata(plan, f"{plan.name}-ray", RAY_COMPONENT),
        "spec": {
            "selector": {"matchLabels": selector(plan, RAY_COMPONENT)},
            "podMetricsEndpoints": [_pod_endpoint(plan, "metrics", RAY_JOB)],
        },
    }


def engine_pod_monitor(plan: DeploymentPlan) -> dict[str, Any]:
    """The engines' own `/metrics` on the worker pods' fixed HTTP port (rank 0 serves it;
    a rank > 0 answers only health, so a replica is up while any of its pods is)."""
    workers = {**selector(plan, RAY_COMPONENT), "ray.io/node-type": "worker"}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata(plan, f"{plan.name}-engines", RAY_COMPONENT),
        "spec": {
            "selector": {"matchLabels": workers},
            "podMetricsEndpoints": [
                _pod_endpoint(plan, ENGINE_PORT_NAME, cat.JOB_ENGINE, pool_labels(plan))
            ],
        },
    }


# The embedded cluster's replica and rank alerts read the observe agent's series, which
# Kubernetes does not have; these read what the PodMonitors scrape there.
K8S_ALERTS: dict[str, dict[str, Any]] = {
    "GlmctlEngineReplicaDown": {
        "expr": f'max by (deployment, replica) (up{{job="{cat.JOB_ENGINE}"}}) == 0',
        "for": "2m",
        "annotations": {
            "summary": "{{ $labels.deployment }} replica {{ $labels.replica }}: no engine answers",
            "description": "No pod of this replica answers on the engine port. `kubectl logs"
            " POD -c engine-logs` shows the engine's log; `kubectl describe pod` why a pod"
            " is not running (GPUs, the models volume). Serve replaces a failed replica.",
        },
    },
    "GlmctlNodeRankDown": {
        "expr": f'min by (deployment, replica, node_rank) (up{{job="{RAY_JOB}"}}) == 0',
        "for": "2m",
        "annotations": {
            "summary": "{{ $labels.deployment }} replica {{ $labels.replica }}: pod"
            " {{ $labels.node_rank }} of its hosts is down",
            "description": "A multi-node replica cannot serve with a node missing: Ray's"
            " metrics agent on that pod does not answer. `kubectl get pods -l"
            " ray.io/worker-group-replica-name=REPLICA` shows which.",
        },
    },
}


def k8s_rule_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`groups` with the alerts of K8S_ALERTS rewritten (labels and other annotations,
    such as the runbook, kept)."""
    out = []
    for group in groups:
        rules = []
        for rule in group.get("rules", []):
            change = K8S_ALERTS.get(rule.get("alert", ""))
            if change is None:
                rules.append(dict(rule))
                continue
            notes = {**rule.get("annotations", {}), **change["annotations"]}
            rules.append({**rule, **change, "annotations": notes})
        out.append({**group, "rules": rules})
    return out


def prometheus_rule(
    plan: DeploymentPlan, rule_files: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """One PrometheusRule holding the groups of every rule file (`{"groups": [...]}`)."""
    groups: list[dict[str, Any]] = []
    for rule_file in rule_files:
        groups.extend(dict(g) for g in rule_file.get("groups", []))
    groups = k8s_rule_groups(groups)
    names = [g.get("name") for g in groups]
    duplicates = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicates:
        raise UserError(f"rule groups named more than once: {', '.join(duplicates)}.")
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(plan, plan.name, MONITORING),
        "spec": {"groups": groups},
    }


def dashboards_configmap(
    plan: DeploymentPlan, dashboards: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Dashboard JSON files in one ConfigMap labelled for Grafana's sidecar."""
    data = {
        name if name.endswith(".json") else f"{name}.json": json.dumps(
            dashboard, indent=1, sort_keys=True
        )
        for name, dashboard in sorted(dashboards.items())
    }
    size = sum(len(k) + len(v.encode()) for k, v in data.items())
    if size > CONFIGMAP_LIMIT_BYTES:
        raise UserError(
            f"the dashboards come to {size} bytes; a ConfigMap holds at most"
            f" {CONFIGMAP_LIMIT_BYTES}.",
            fix="split the dashboards over several ConfigMaps.",
        )
    meta = metadata(plan, f"{plan.name}-dashboards", MONITORING)
    meta["labels"][GRAFANA_DASHBOARD_LABEL] = "1"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
