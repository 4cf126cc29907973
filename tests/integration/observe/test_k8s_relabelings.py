"""The engine PodMonitor's relabelings, run by a real Prometheus.

No Kubernetes API server runs here, so the pods Prometheus's Kubernetes discovery would
find are given as static targets carrying the same `__meta_kubernetes_pod_*` labels that
discovery sets (Prometheus keeps labels starting with `__` until relabeling ends), and the
PodMonitor's relabelings become the job's `relabel_configs` as prometheus-operator writes
them (`sourceLabels` -> `source_labels`, ...; pkg/prometheus/promcfg.go). Nothing listens
on the targets: their labels are what is checked (`/api/v1/targets`), not their samples.
The pod labels are KubeRay v1.7.0's (`ray.io/group`, the multi-host replica name and host
index; worker group names from the rendered RayService).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controlplane.catalog.pd_metrics import PD_LABEL
from controlplane.local.ports import free_port
from controlplane.local.prometheus_server import start_prometheus
from controlplane.observe import catalog as cat
from controlplane.render.k8s import manifests
from controlplane.render.ray_serve import reference_plan
from controlplane.spec import load_topology
from tests.integration.observe.promql import wait_for
from tests.unit.spec.pd_helpers import AIR_PD

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
COLOCATED = AIR_PD.with_name("glm45-air-fp8-h100x2.yaml")
# KubeRay v1.7.0's pod labels: the worker group (`RayNodeGroupLabelKey`, set by
# common/pod.go `labelPod`), and a multi-host replica's name and host index (KubeRay's
# multi-host docs: "KubeRay will automatically set the following labels"). Spelled here, not
# taken from the renderer, so a wrong name there fails this test.
GROUP, REPLICA_NAME, HOST_INDEX = (
    "ray.io/group",
    "ray.io/worker-group-replica-name",
    "ray.io/replica-host-index",
)


def _meta(pod_label: str) -> str:
    """The label Prometheus's Kubernetes pod discovery gives a pod label (`strutil.
    SanitizeLabelName`: every character outside [a-zA-Z0-9_] becomes `_`)."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", pod_label)


def _snake(key: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def _engine_monitor(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(the engine PodMonitor's relabel_configs, the RayService's worker group names)."""
    objects = manifests(reference_plan(load_topology(path)))
    monitors = [o for o in objects if o["kind"] == "PodMonitor"]
    (monitor,) = [m for m in monitors if m["metadata"]["name"].endswith("-engines")]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    relabel = [{_snake(k): v for k, v in rule.items()} for rule in endpoint["relabelings"]]
    (service,) = [o for o in objects if o["kind"] == "RayService"]
    groups = [g["groupName"] for g in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]]
    return relabel, groups


def _pods(groups: list[str]) -> list[dict[str, Any]]:
    """Two hosts of one replica per worker group, labelled as KubeRay labels them."""
    pods = []
    for group in groups:
        for host in ("0", "1"):
            labels = {
                "__meta_kubernetes_pod_name": f"svc-raycluster-{group}-worker-{host}",
                _meta(GROUP): group,
                _meta(REPLICA_NAME): f"{group}-abcde",
                _meta(HOST_INDEX): host,
            }
            pods.append({"targets": [f"127.0.0.1:{free_port()}"], "labels": labels})
    return pods


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    processes = []

    def start(path: Path) -> tuple[list[dict[str, str]], list[str]]:
        relabel, groups = _engine_monitor(path)
        config = {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {"job_name": "pods", "static_configs": _pods(groups), "relabel_configs": relabel}
            ],
        }
        root = tmp_path / path.stem
        root.mkdir()
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        processes.append(
            start_prometheus(root / "prometheus.yml", root / "data", root / "log", port)
        )
        url = f"http://127.0.0.1:{port}/api/v1/targets"

        def active() -> list[dict[str, str]]:
            targets = httpx.get(url, timeout=5).json()["data"]["activeTargets"]
            return [t["labels"] for t in targets] if len(targets) == 2 * len(groups) else []

        return wait_for(active, 30, "every pod's target"), groups

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=20)


def test_pd_pods_carry_their_pool_and_replica(prometheus: Any) -> None:
    labels, groups = prometheus(AIR_PD)
    assert len(groups) == 2
    for target in labels:
        group = next(g for g in groups if target[cat.REPLICA] == f"{g}-abcde")
        assert target[PD_LABEL] == group.split("-")[0]
        assert target["job"] == cat.JOB_ENGINE and target[cat.NODE_RANK] in ("0", "1")
    pools = sorted(t[PD_LABEL] for t in labels)
    assert pools == ["decode", "decode", "prefill", "prefill"]


def test_colocated_pods_carry_no_pool(prometheus: Any) -> None:
    labels, _ = prometheus(COLOCATED)
    assert labels and all(PD_LABEL not in t for t in labels)
    assert {t[cat.NODE_RANK] for t in labels} == {"0", "1"}
