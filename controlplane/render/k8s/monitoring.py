"""prometheus-operator objects and the Grafana dashboards ConfigMap (pure).

ServiceMonitor: the routers' `/metrics`. PodMonitor: Ray's metrics port on the Ray pods.
`prometheus_rule` and `dashboards_configmap` wrap what the observability catalogue
produces (Prometheus rule files `{"groups": [...]}` and dashboard JSON by file name); they
take that data as arguments so this module needs nothing from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

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

SCRAPE_INTERVAL = "15s"
# Label Grafana's dashboard sidecar (kiwigrid k8s-sidecar, the Grafana Helm chart's
# default `sidecar.dashboards.label`) watches for.
GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"
CONFIGMAP_LIMIT_BYTES = 1024 * 1024  # Kubernetes refuses larger ConfigMaps
MONITORING = "monitoring"
RAY_JOB = "glmctl-ray"  # Ray's own metrics (the engines' ports are chosen at start-up)


def target_labels(plan: DeploymentPlan, job: str) -> list[dict[str, Any]]:
    """Relabelings giving each scraped series the catalogue's job and target labels
    (observe.catalog.TARGET_LABELS), as file-SD does on the embedded cluster."""
    fixed = {"job": job, cat.DEPLOYMENT: plan.name, cat.MODEL: plan.group.served_model_name}
    out: list[dict[str, Any]] = [
        {"action": "replace", "targetLabel": label, "replacement": value}
        for label, value in fixed.items()
    ]
    out.append(
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_pod_name"],
            "targetLabel": cat.REPLICA,
        }
    )
    out.append({"action": "replace", "targetLabel": cat.NODE_RANK, "replacement": "0"})
    return out


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
                    "relabelings": target_labels(plan, cat.JOB_ROUTER),
                }
            ],
        },
    }


def pod_monitor(plan: DeploymentPlan) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata(plan, f"{plan.name}-ray", RAY_COMPONENT),
        "spec": {
            "selector": {"matchLabels": selector(plan, RAY_COMPONENT)},
            "podMetricsEndpoints": [
                {
                    "port": "metrics",
                    "path": "/metrics",
                    "interval": SCRAPE_INTERVAL,
                    "relabelings": target_labels(plan, RAY_JOB),
                }
            ],
        },
    }


def prometheus_rule(
    plan: DeploymentPlan, rule_files: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """One PrometheusRule holding the groups of every rule file (`{"groups": [...]}`)."""
    groups: list[dict[str, Any]] = []
    for rule_file in rule_files:
        groups.extend(dict(g) for g in rule_file.get("groups", []))
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
