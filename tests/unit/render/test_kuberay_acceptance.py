"""Rendered RayServices against KubeRay v1.7.0's own validation and probe rules
(tests/unit/render/kuberay_v170.py, pinned to the release commit), with the manifests
glmctl rendered before issue 23 kept as negative controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.backends.ray.apps import engine_app_name
from controlplane.render.k8s import manifests
from controlplane.render.k8s.rayservice import serve_config
from controlplane.render.ray_serve import reference_plan
from controlplane.spec import load_topology
from tests.unit.render import kuberay_v170 as kuberay

REPO = Path(__file__).resolve().parents[3]
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))
DATA = Path(__file__).parent / "data"
BEFORE = DATA / "rayservice-glm45-bf16-before-issue23.yaml"
BEFORE_POLICIES = DATA / "policies-glm45-bf16-before-issue23.yaml"


def _rayservice(path: Path) -> dict[str, Any]:
    (service,) = [
        o for o in manifests(reference_plan(load_topology(path))) if o["kind"] == "RayService"
    ]
    return yaml.safe_load(yaml.safe_dump(service))  # as kubectl would send it


def _committed(name: str) -> dict[str, Any]:
    text = (REPO / "manifests" / name / "rayservice.yaml").read_text()
    (service,) = list(yaml.safe_load_all(text))
    return service


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_every_shipped_topology_passes_kuberay_validation(path: Path) -> None:
    service = _rayservice(path)
    kuberay.validate_rayservice(service)
    kuberay.validate_rayservice(_committed(service["metadata"]["name"]))


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_workers_become_ready_with_the_rendered_proxy_location(path: Path) -> None:
    service = _rayservice(path)
    proxy = yaml.safe_load(service["spec"]["serveConfigV2"])["proxy_location"]
    assert kuberay.workers_become_ready(service, proxy) == []


def test_the_manifests_before_issue_23_are_rejected() -> None:
    """Negative controls: the committed render of glm45-bf16 before this change."""
    before = yaml.safe_load(BEFORE.read_text().split("\n", 2)[2])
    with pytest.raises(kuberay.KubeRayRejects, match="cannot set `REDIS_PASSWORD` env var"):
        kuberay.validate_rayservice(before)
    proxy = yaml.safe_load(before["spec"]["serveConfigV2"])["proxy_location"]
    assert proxy == "HeadOnly"
    assert kuberay.workers_become_ready(before, proxy) == ["h100-x8"]
    # With EveryNode the same pods would pass: the check depends on the proxy location.
    assert kuberay.workers_become_ready(before, "EveryNode") == []
    # Its worker PodDisruptionBudget allowed no eviction at all (all pods required).
    budgets = [d for d in yaml.safe_load_all(BEFORE_POLICIES.read_text()) if d]
    (workers,) = [b for b in budgets if b["metadata"]["name"].endswith("-workers")]
    pods = sum(
        g["maxReplicas"] * g["numOfHosts"]
        for g in before["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    )
    assert workers["spec"]["minAvailable"] == pods


def _head(spec: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = spec["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"
    ][0]
    return container


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: _head(s)["env"].append({"name": "RAY_REDIS_ADDRESS", "value": "x:6379"}),
         "RAY_REDIS_ADDRESS"),
        (lambda s: _head(s)["env"].append({"name": "REDIS_PASSWORD", "value": "x"}),
         "REDIS_PASSWORD"),
        (lambda s: s["rayClusterConfig"]["headGroupSpec"]["rayStartParams"].update(
            {"redis-password": "x"}), "redis-password"),
        (lambda s: s["rayClusterConfig"]["workerGroupSpecs"][0].update({"minReplicas": 9}),
         "greater than maxReplicas"),
        (lambda s: s["rayClusterConfig"]["workerGroupSpecs"][0].update({"resources": {"GPU": "8"}}),
         "both rayStartParams and Resources"),
        (lambda s: s.update({"upgradeStrategy": {"type": "Rolling"}}), "UpgradeStrategy.Type"),
        (lambda s: s["rayClusterConfig"]["workerGroupSpecs"][0].update({"idleTimeoutSeconds": 60}),
         "autoscaler v2"),
    ],
)  # fmt: skip
def test_the_transcription_rejects_what_kuberay_rejects(change: Any, message: str) -> None:
    service = _rayservice(REPO / "topologies" / "glm45-bf16.yaml")
    change(service["spec"])
    with pytest.raises(kuberay.KubeRayRejects, match=message):
        kuberay.validate_rayservice(service)


def test_kuberay_keeps_a_user_readiness_probe_and_adds_the_proxy_check_otherwise() -> None:
    service = _rayservice(REPO / "topologies" / "glm45-bf16.yaml")
    group = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    container = group["template"]["spec"]["containers"][0]
    kept = kuberay.effective_readiness_probe(container, "worker", {}, "2.60.0")
    assert kept == container["readinessProbe"]
    assert not kuberay.probe_needs_serve_proxy(kept)
    # KubeRay's own probe for this worker asks the raylet as glmctl's does, plus the proxy.
    injected = kuberay.effective_readiness_probe(
        {**container, "readinessProbe": None}, "worker", {}, "2.60.0"
    )
    assert kuberay.probe_needs_serve_proxy(injected)
    assert "api/local_raylet_healthz" in injected["exec"]["command"][2]
    head = kuberay.effective_readiness_probe({"name": "h"}, "head", {}, "2.60.0")
    assert head["httpGet"]["path"] == container["readinessProbe"]["httpGet"]["path"]
    assert head["httpGet"]["port"] == container["readinessProbe"]["httpGet"]["port"]


def _with_max(tmp_path: Path, source: Path, maximum: int) -> Path:
    data = yaml.safe_load(source.read_text())
    data["name"] = source.stem
    data["replicas"] = {**data["replicas"], "max": maximum}
    out = tmp_path / f"max{maximum}" / source.name
    out.parent.mkdir()
    out.write_text(yaml.safe_dump(data))
    return out


def test_a_new_replicas_max_keeps_the_app_and_the_cluster(tmp_path: Path) -> None:
    """Only `replicas.max` changes: the same Serve application (name, import path, args),
    so Serve updates it in place, and the same RayCluster as KubeRay compares clusters."""
    source = REPO / "topologies" / "glm45-fp8-vllm.yaml"  # autoscaled, 2..4 replicas
    low, high = (_with_max(tmp_path, source, m) for m in (4, 6))
    before, after = _rayservice(low), _rayservice(high)
    old_app = yaml.safe_load(before["spec"]["serveConfigV2"])["applications"][0]
    new_app = yaml.safe_load(after["spec"]["serveConfigV2"])["applications"][0]
    assert old_app["name"] == new_app["name"]
    assert old_app["import_path"] == new_app["import_path"]
    assert old_app["args"] == new_app["args"]
    auto = [a["deployments"][0]["autoscaling_config"]["max_replicas"] for a in (old_app, new_app)]
    assert auto == [4, 6]
    old_cluster, new_cluster = (s["spec"]["rayClusterConfig"] for s in (before, after))
    assert old_cluster != new_cluster  # maxReplicas differs ...
    assert kuberay.cluster_hash(old_cluster) == kuberay.cluster_hash(new_cluster)  # ... only
    # Negative control: the versioned name (`apply`'s, and the render's before issue 23)
    # changes with the replica counts, which made Serve delete the app and start another.
    versioned = {engine_app_name(reference_plan(load_topology(p))) for p in (low, high)}
    assert len(versioned) == 2


def test_a_changed_engine_flag_does_start_a_new_cluster_or_app(tmp_path: Path) -> None:
    """Control for the test above: a real change is seen by Serve or KubeRay."""
    source = REPO / "topologies" / "glm45-fp8-vllm.yaml"
    data = yaml.safe_load(source.read_text())
    data["name"] = source.stem
    data["max_num_seqs"] = data.get("max_num_seqs", 8) * 2
    changed = tmp_path / source.name
    changed.write_text(yaml.safe_dump(data))
    before, after = _rayservice(source), _rayservice(changed)
    apps = [yaml.safe_load(s["spec"]["serveConfigV2"])["applications"][0] for s in (before, after)]
    assert apps[0]["name"] == apps[1]["name"]
    assert apps[0]["args"] != apps[1]["args"]  # Serve redeploys the replicas


def test_serve_config_names_the_app_after_the_deployment() -> None:
    plan = reference_plan(load_topology(REPO / "topologies" / "glm45-bf16.yaml"))
    (app,) = serve_config(plan)["applications"]
    assert app["name"] == "glm45-bf16-engine" and plan.digest() not in app["name"]
