"""apply / scale / delete on a local multi-raylet Ray cluster (2 simulated nodes x 8 H100).

One embedded cluster for the whole module (each start costs ~10 s here). The keeper grows
it by one H200 node when glm45-fp8 arrives.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.spec import Topology, load_topology

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]
TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"


def _topo(name: str) -> Topology:
    return load_topology(TOPOLOGIES / f"{name}.yaml")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private state dir with a running embedded cluster of 2 x 8 H100 nodes."""
    from controlplane.backends.ray import cluster
    from controlplane.planner import embedded_inventory
    from controlplane.settings import get_settings

    state = tmp_path_factory.mktemp("glmctl-state")
    old = os.environ.get("GLMCTL_STATE_DIR")
    os.environ["GLMCTL_STATE_DIR"] = str(state)
    get_settings.cache_clear()
    nodes = cluster.node_specs(list(embedded_inventory(_topo("glm45-bf16")).nodes))
    assert len(nodes) == 2 and all(n.gpus == 8 for n in nodes)
    cluster.start_embedded(state, nodes, None)
    try:
        yield state
    finally:
        import ray

        ray.shutdown()
        cluster.stop_embedded(state)
        if old is None:
            os.environ.pop("GLMCTL_STATE_DIR", None)
        else:
            os.environ["GLMCTL_STATE_DIR"] = old
        get_settings.cache_clear()


def _apply(name: str) -> tuple[object, object]:
    from controlplane.backends.ray import deploy

    topo = _topo(name)
    prepared = deploy.prepare_apply(topo)
    return deploy.execute_apply(prepared, topo), prepared


def _served_by_old_app(url: str, model: str, timeout: float) -> str:
    """The endpoint that answered a chat, retrying while the router knows no endpoint."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
        if response.status_code == 200:
            return response.headers["x-glmctl-endpoint"]
        assert response.status_code == 503, response.text  # the deployment's model, no replica
        assert "is registered yet" in response.text and response.headers["retry-after"] == "1"
        assert time.monotonic() < deadline, f"no endpoint came back in {timeout:.0f} s"
        time.sleep(0.5)


def _chat(url: str, model: str) -> dict[str, object]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def _deployment(name: str) -> dict[str, object]:
    from controlplane.backends.ray import manage

    found = [d for d in manage.status()["deployments"] if d["name"] == name]
    assert found, f"{name} not in status"
    return found[0]


def test_multi_node_replica_spans_two_nodes(embedded: Path) -> None:
    record, _ = _apply("glm45-bf16")
    details = _deployment("glm45-bf16")
    (replica,) = details["replica_details"]  # type: ignore[misc]
    ranks = replica["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["node_id"] != ranks[1]["node_id"]  # STRICT_SPREAD: two Ray nodes
    assert all(len(r["gpu_ids"]) == 8 for r in ranks)
    reply = _chat(record.router_url, "glm-4.5")  # type: ignore[attr-defined]
    assert reply["usage"]["completion_tokens"] > 0  # type: ignore[index]


def test_second_topology_scales_up_and_back(embedded: Path) -> None:
    from controlplane.backends.ray import deploy, manage

    record, _ = _apply("glm45-fp8")  # H200: the keeper adds a node
    assert _chat(record.router_url, "glm-4.5-fp8")["model"] == "glm-4.5-fp8"  # type: ignore[attr-defined]
    manage.scale("glm45-fp8", 2)
    replicas = _deployment("glm45-fp8")["replica_details"]
    assert len(replicas) == 2  # type: ignore[arg-type]
    # `status -o json`: each count says what it counts (a fixed count: min = max = desired).
    counts = {"serving": 2, "desired": 2, "min": 2, "max": 2}
    assert _deployment("glm45-fp8")["replicas"] == counts
    manage.scale("glm45-fp8", 1)
    assert len(_deployment("glm45-fp8")["replica_details"]) == 1  # type: ignore[arg-type]
    with pytest.raises(Exception, match="holds"):
        manage.scale("glm45-fp8", 3)  # 3 x 4 H200 > one 8-GPU node
    topo = _topo("glm45-fp8")
    deploy.check_drift(deploy.prepare_apply(topo), topo)  # nothing changed: no refusal


def test_failed_new_version_leaves_the_old_one_serving(embedded: Path) -> None:
    from controlplane.backends.ray import deploy, manage

    topo = _topo("glm45-fp8")
    prepared = deploy.prepare_apply(topo)
    assert prepared.unchanged  # same spec again: nothing to do
    shown = manage.preview(topo)  # `glmctl plan`: "no changes", not "new deployment"
    assert shown.running and shown.diff == []
    group = prepared.plan.group
    crash = ("{python}", "-c", "import sys; print('boom'); sys.exit(3)")
    broken_rank = group.ranks[0].model_copy(update={"argv": crash})
    broken_group = group.model_copy(update={"ranks": (broken_rank,)})
    prepared.plan = prepared.plan.model_copy(update={"groups": (broken_group,)})
    before = deploy.read_record(prepared.target.redis_url, "glm45-fp8")
    with pytest.raises(deploy.ApplyFailed, match=r"rank 0 on \S+ exited with code 3: boom"):
        deploy.execute_apply(prepared, topo)
    after = deploy.read_record(prepared.target.redis_url, "glm45-fp8")
    assert before is not None and after is not None and after.version == before.version
    assert after.app == before.app
    # The old version answers. Serve may be replacing one of its replicas on this loaded
    # machine (its health check); the replacement re-registers within seconds, so allow that.
    served_by = _served_by_old_app(after.router_url, "glm-4.5-fp8", timeout=60)
    assert served_by.startswith(f"{before.app}/"), served_by


def test_delete_is_idempotent_and_stops_the_cluster(embedded: Path) -> None:
    from controlplane.backends.ray import cluster, manage

    assert manage.delete("glm45-bf16") is True
    assert manage.delete("glm45-bf16") is False
    assert manage.delete("glm45-fp8") is True  # the last one: the embedded cluster stops
    deadline = time.monotonic() + 30
    while cluster.embedded_state(embedded) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.embedded_state(embedded) is None
