"""KubeRay manifests from a plan (`glmctl render FILE --target k8s` -> manifests/<name>/).

Pure: `manifests(plan, options, ...)` returns the objects, `manifest_files` the YAML text of
each file of the folder (with a `kustomization.yaml`, so `kubectl apply -k` takes it).
Built from the same plan as `deployments/` (render.ray_serve.reference_plan).

- rayservice.py: RayService (head, serveConfigV2, GCS FT, upgrade strategy)
- worker_pod.py: the worker group's pod (probes, engine ports, preStop drain, logs, NCCL)
- staging.py: the checkpoint's PVC and download Job; gpus.py: GPU node selection
- services.py: Redis StatefulSet + Service, router Deployment + Service (API keys from a
  Secret), PodDisruptionBudgets, Redis NetworkPolicy; network.py: the Ray pods' policy
- monitoring.py: ServiceMonitor, PodMonitors, PrometheusRule, dashboards ConfigMap
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from controlplane.errors import UserError
from controlplane.planner.models import DeploymentPlan
from controlplane.render.k8s import monitoring, services
from controlplane.render.k8s.common import K8sOptions, kubernetes, redis_name
from controlplane.render.k8s.network import ray_network_policy
from controlplane.render.k8s.rayservice import rayservice
from controlplane.render.k8s.staging import staging_objects

__all__ = [
    "K8sOptions",
    "fabric_notes",
    "manifest_files",
    "manifests",
    "observability_catalogue",
]


class _Dumper(yaml.SafeDumper):
    """No anchors or aliases (kubectl users read these files); multi-line strings such
    as serveConfigV2 as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    """YAML documents of `objects` in their key order."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, width=100)


RuleFiles = Sequence[Mapping[str, Any]]
Dashboards = Mapping[str, Mapping[str, Any]]


def observability_catalogue(plan: DeploymentPlan) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rule files and dashboards of the observability catalogue (controlplane.observe) for
    `plan`: the recording rules, this deployment's SLO alerts and the operational alerts,
    as the embedded Prometheus loads them (observe/prometheus.py)."""
    from controlplane.observe import rules
    from controlplane.spec.models import SloSpec

    slo = SloSpec.model_validate(plan.spec["slo"])
    operations = rules.alert_rules(slo)["groups"][-1]
    rule_files = [
        rules.recording_rules(),
        rules.alert_rules(slo, deployment=plan.name),
        {"groups": [operations]},
    ]
    try:
        from controlplane.observe.dashboards import render_dashboards
    except ImportError as exc:  # grafana-foundation-sdk: the `ops` extra
        raise UserError(
            "the dashboards ConfigMap needs the `ops` extra.",
            fix="pip install 'glmctl[ops]'.",
        ) from exc
    return rule_files, render_dashboards()


def _files(
    plan: DeploymentPlan, options: K8sOptions, rule_files: RuleFiles, dashboards: Dashboards
) -> dict[str, list[dict[str, Any]]]:
    observed = [
        services.redis_network_policy(plan, options),
        [ray_network_policy(plan)],
        services.disruption_budgets(plan),
    ]
    watch = [
        monitoring.service_monitor(plan),
        monitoring.pod_monitor(plan),
        monitoring.engine_pod_monitor(plan),
    ]
    if rule_files:
        watch.append(monitoring.prometheus_rule(plan, rule_files))
    if dashboards:
        watch.append(monitoring.dashboards_configmap(plan, dashboards))
    files = {
        "models.yaml": staging_objects(plan, options),
        "rayservice.yaml": [rayservice(plan, options)],
        "redis.yaml": services.redis_objects(plan, options),
        "router.yaml": services.router_objects(plan, options),
        "policies.yaml": [obj for part in observed for obj in part],
        "monitoring.yaml": watch,
    }
    return {name: objs for name, objs in files.items() if objs}


def manifests(
    plan: DeploymentPlan,
    options: K8sOptions | None = None,
    rule_files: RuleFiles = (),
    dashboards: Dashboards | None = None,
) -> list[dict[str, Any]]:
    """Every object of the deployment, in apply order."""
    files = _files(plan, options or K8sOptions(), rule_files, dashboards or {})
    return [obj for objs in files.values() for obj in objs]


def fabric_notes(plan: DeploymentPlan) -> list[str]:
    """What the network between one replica's nodes means for its layout (a preflight note
    of the render): tensor parallelism across nodes over TCP is slow, since every layer's
    all-reduce crosses the pod network. The model card's layouts keep TP within a node;
    vLLM's and Ray's multi-node guides: TP within a node, PP across nodes."""
    tensor = int(plan.spec.get("parallelism", {}).get("tensor") or 1)
    group = plan.group
    if group.nodes <= 1 or tensor <= group.gpus_per_node or kubernetes(plan).rdma is not None:
        return []
    return [
        f"note: tensor parallelism {tensor} spans {group.nodes} nodes of {group.gpus_per_node}"
        " GPUs over the pod network (TCP, no `kubernetes.rdma`): each layer's all-reduce"
        " crosses it, so decode is far slower than on one node. Give the pods an RDMA NIC"
        " (`kubernetes.rdma`), or keep TP within a node and split across nodes with"
        f" pipeline parallelism (tensor: {group.gpus_per_node}, pipeline: {group.nodes})."
    ]


def _header(plan: DeploymentPlan, source: str) -> str:
    keys = sorted({e.key_env for e in plan.router.external if e.key_env})
    more = sorted({e.key_secret for e in plan.router.external if e.key_secret})
    if keys:
        more.insert(0, f"{services.external_secret_name(plan)} (keys {', '.join(keys)})")
    if plan.router.auth != "none":
        more.insert(0, f"{services.api_keys_secret(plan)} (API keys: glmctl keys create --k8s)")
    external = f" and {', '.join(more)}" if more else ""
    return (
        f"# KubeRay manifests for `{plan.name}`, rendered from {source} (plan {plan.digest()}).\n"
        f"# Do not edit: `glmctl render {source} --target k8s` writes them. Needs the Secrets"
        f" {redis_name(plan)} (key `password`){external}. docs/guides/kubernetes.md.\n"
    ) + "".join(f"# {note}\n" for note in fabric_notes(plan))


def manifest_files(
    plan: DeploymentPlan,
    source: str,
    options: K8sOptions | None = None,
    rule_files: RuleFiles = (),
    dashboards: Dashboards | None = None,
) -> dict[str, str]:
    """File name -> YAML text of manifests/<name>/, `kustomization.yaml` included."""
    files = _files(plan, options or K8sOptions(), rule_files, dashboards or {})
    header = _header(plan, source)
    out = {name: header + to_yaml(objs) for name, objs in files.items()}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(files),
    }
    out["kustomization.yaml"] = header + to_yaml([kustomization])
    return out
