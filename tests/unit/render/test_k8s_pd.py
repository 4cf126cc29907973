"""KubeRay manifests of a PD plan: one worker group per pool, each pool's Serve deployment
pinned to its own group's pods (KubeRay's validation runs on them in
test_kuberay_acceptance.py, as on every shipped topology)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.render.k8s import manifests
from controlplane.render.k8s.worker_pod import POOL_LABEL
from controlplane.render.ray_serve import reference_plan
from controlplane.spec import load_topology
from tests.unit.render import kuberay_v170 as kuberay
from tests.unit.spec.pd_helpers import AIR_PD, H200_PD


def _service(path: Path) -> dict[str, Any]:
    (service,) = [
        o for o in manifests(reference_plan(load_topology(path))) if o["kind"] == "RayService"
    ]
    return yaml.safe_load(yaml.safe_dump(service))


@pytest.mark.parametrize("path", [AIR_PD, H200_PD], ids=lambda p: p.stem)
def test_each_pool_has_its_worker_group_and_deployment(path: Path) -> None:
    plan = reference_plan(load_topology(path))
    service = _service(path)
    kuberay.validate_rayservice(service)
    workers = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    names = [w["groupName"] for w in workers]
    assert len(set(names)) == 2 and all(n.startswith(("prefill-", "decode-")) for n in names)
    assert [w["labels"] for w in workers] == [{POOL_LABEL: "prefill"}, {POOL_LABEL: "decode"}]
    for group, spec in zip(plan.groups, workers, strict=True):
        assert (spec["numOfHosts"], spec["maxReplicas"]) == (group.nodes, group.replicas.max)
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    selectors = {d["name"]: d["placement_group_bundle_label_selector"] for d in app["deployments"]}
    assert selectors == {
        "EngineGroup-prefill": [{POOL_LABEL: "prefill"}],
        "EngineGroup-decode": [{POOL_LABEL: "decode"}],
    }


def test_a_colocated_rayservice_has_no_pool_labels() -> None:
    service = _service(AIR_PD.with_name("glm45-air-fp8-h100x2.yaml"))
    (workers,) = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert "labels" not in workers and workers["groupName"] == "h100-x2"
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    assert "placement_group_bundle_label_selector" not in app["deployments"][0]
