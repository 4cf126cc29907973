"""A PD plan on the Ray backend: deployments per pool, replica labels and KV ports, the
status and top views of both pools (pure parts; tests/integration/ray/test_pd_apply.py
applies one)."""

from __future__ import annotations

from rich.console import Console

from controlplane.backends.ray.apps import deployment_name, engine_options
from controlplane.backends.ray.pd_replica import (
    bootstrap_port,
    group_of,
    pools_view,
    replica_label,
)
from controlplane.cli.deploy_cmds import _deployments_table, replicas_cell
from controlplane.observe.top import build_frame, render, replica_name
from controlplane.planner import embedded_inventory, plan
from controlplane.planner.models import DeploymentPlan
from controlplane.render.ray_serve import reference_plan
from controlplane.spec import load_topology
from tests.unit.spec.pd_helpers import AIR_PD, topology, with_pools

VALUES = {"host": "127.0.0.1", "port": "40001", "bootstrap_port": "40002"}


def _simulated() -> DeploymentPlan:
    topo = load_topology(AIR_PD)
    return plan(topo, embedded_inventory(topo))


def _colocated() -> DeploymentPlan:
    topo = load_topology(AIR_PD.with_name("glm45-air-fp8-h100x2.yaml"))
    return plan(topo, embedded_inventory(topo))


def test_each_pool_is_its_own_serve_deployment() -> None:
    result = _simulated()
    names = [engine_options(result, group=g)["name"] for g in result.groups]
    assert names == ["EngineGroup-prefill", "EngineGroup-decode"]
    assert deployment_name(_colocated().group) == "EngineGroup"
    for group in result.groups:  # each deployment places its own pool's bundles
        options = engine_options(result, group=group)
        assert options["placement_group_bundles"] == [dict(b) for b in group.bundles]


def test_replica_labels_name_the_pool() -> None:
    prefill, decode = _simulated().groups
    assert replica_label(prefill, "ab12cd34") == "prefill-ab12cd34"
    assert replica_label(decode, "ab12cd34") == "decode-ab12cd34"
    assert replica_label(_colocated().group, "ab12cd34") == "ab12cd34"


def test_a_simulated_prefill_registers_its_http_port_as_the_bootstrap() -> None:
    prefill, decode = _simulated().groups
    assert bootstrap_port(prefill, VALUES) == 40001  # the simulator serves it there
    assert bootstrap_port(decode, VALUES) == 0


def test_real_engines_register_the_port_the_worker_filled_in() -> None:
    sglang_prefill, sglang_decode = reference_plan(load_topology(AIR_PD)).groups
    assert bootstrap_port(sglang_prefill, VALUES) == 40002  # --disaggregation-bootstrap-port
    assert bootstrap_port(sglang_decode, VALUES) == 0  # decode learns it per request
    vllm = reference_plan(topology(with_pools(AIR_PD, {}, {}, engine="vllm"), "pd-vllm"))
    assert [bootstrap_port(g, VALUES) for g in vllm.groups] == [40002, 40002]  # NIXL both


def test_status_shows_both_pools() -> None:
    result = _simulated()
    replicas = [
        {"replica_id": "prefill-a", "pd": "prefill", "ranks": []},
        {"replica_id": "decode-b", "pd": "decode", "ranks": []},
    ]
    assert group_of(result, replicas[1]).name == result.groups[1].name
    pools = pools_view(result, replicas[:1])
    assert [(p["pool"], p["serving"], p["desired"]) for p in pools] == [
        ("prefill", 1, 1),
        ("decode", 0, 1),
    ]
    deployment = {
        "name": "pd", "status": "RUNNING", "engine": "sglang", "runtime": "sim",
        "model": "glm-4.5-air-fp8", "endpoint": "http://127.0.0.1:1",
        "replicas": {"serving": 1, "desired": 2}, "pools": pools,
        "replica_details": [{**replicas[0], "ranks": [
            {"rank": 0, "node_id": "n" * 12, "gpu_ids": ["0", "1"]}]}],
    }  # fmt: skip
    assert replicas_cell(deployment) == "prefill 1/1, decode 0/1"
    console = Console(width=200, record=True)
    console.print(_deployments_table([deployment]))
    text = console.export_text()
    assert "prefill 1/1, decode 0/1" in text and "prefill: r0@nnnnnnnn" in text
    colocated = {**deployment, "pools": None}
    assert replicas_cell(colocated) == "1/2"
    assert pools_view(_colocated(), []) == []


def test_top_labels_the_pool_of_each_replica() -> None:
    assert replica_name("prefill-0123456789abcdef") == "prefill 456789abcdef"
    assert replica_name("decode-ab12cd34") == "decode ab12cd34"
    assert replica_name("0123456789abcdef") == "456789abcdef"  # colocated: as before
    samples = {
        "running": [
            ({"deployment": "pd", "replica": "prefill-ab12cd34", "node_rank": "0"}, 3.0),
            ({"deployment": "pd", "replica": "decode-ef56gh78", "node_rank": "0"}, 5.0),
        ]
    }
    console = Console(width=200, record=True)
    console.print(render(build_frame("redis", samples)))
    text = console.export_text()
    assert "prefill ab12cd34" in text and "decode ef56gh78" in text
