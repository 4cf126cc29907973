"""plan(): pure, bounded by the inventory, one bundle per node, serialisable and diffable."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from controlplane.planner import (
    DECLARED_MEMORY,
    CapacityFigures,
    DeploymentPlan,
    Inventory,
    InventoryNode,
    PlanError,
    diff_plans,
    embedded_inventory,
    from_ray_nodes,
    plan,
    plan_summary,
)
from controlplane.planner.inventory import GIB
from controlplane.spec import Topology, load_topology, resolve

TOPOLOGY_DIR = Path(__file__).resolve().parents[3] / "topologies"
TOPOLOGIES = sorted(TOPOLOGY_DIR.glob("*.yaml"))


def _topo(name: str) -> Topology:
    return load_topology(TOPOLOGY_DIR / f"{name}.yaml")


def _nodes(gpu: str, count: int, gpus: int = 8, ram_gib: int = 2048) -> tuple[InventoryNode, ...]:
    return tuple(
        InventoryNode(
            node_id=f"{gpu}-{i}",
            gpu_type=gpu,
            gpus_total=gpus,
            gpus_free=gpus,
            cpus_total=32,
            cpus_free=32,
            memory_bytes=ram_gib * GIB,
        )
        for i in range(count)
    )


def _inventory(*nodes: InventoryNode) -> Inventory:
    return Inventory(nodes=nodes, memory_resource=DECLARED_MEMORY, simulated_gpus=True)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_every_topology_plans_on_its_embedded_cluster(path: Path) -> None:
    topo = load_topology(path)
    before = topo.spec.model_dump()
    inventory = embedded_inventory(topo)
    result = plan(topo, inventory)
    assert topo.spec.model_dump() == before  # never mutates its input
    group = result.group
    assert len(group.bundles) == len(group.ranks) == topo.nodes
    assert group.strategy == ("STRICT_PACK" if topo.nodes == 1 else "STRICT_SPREAD")
    gpus = sum(b.get("GPU", 0) for b in group.bundles)
    assert gpus in (0, topo.gpus_per_replica)
    assert [r.rank for r in group.ranks] == list(range(topo.nodes))
    assert group.ranks[0].serves_http
    assert 1 <= group.replicas.initial <= group.replicas.max <= group.replicas.fits
    # serialises and comes back equal (YAML and JSON), digest stable
    again = DeploymentPlan.model_validate(yaml.safe_load(yaml.safe_dump(result.to_data())))
    assert again == result and again.digest() == result.digest()
    assert json.loads(json.dumps(result.to_data())) == result.to_data()
    assert result.name in plan_summary(result)
    assert plan(topo, inventory) == result  # deterministic


def test_multi_node_replica_needs_distinct_nodes() -> None:
    topo = _topo("glm45-bf16")
    # one node holding all 16 GPUs cannot host two STRICT_SPREAD bundles
    with pytest.raises(PlanError) as err:
        plan(topo, _inventory(*_nodes("H100", 1, gpus=16)))
    assert "16" in str(err.value) or "8 free GPUs" in str(err.value)
    ok = plan(topo, _inventory(*_nodes("H100", 2)))
    assert ok.group.replicas.fits == 1
    assert all(b["GPU"] == topo.gpus_per_node for b in ok.group.bundles)


def test_replica_bounds_never_exceed_inventory() -> None:
    topo = _topo("glm45-fp8-vllm")  # replicas min 2, max 4 of 4 x H200
    holds = 8 // topo.gpus_per_replica + 4 // topo.gpus_per_replica
    nodes = _nodes("H200", 1) + _nodes("H200", 1, gpus=4)
    nodes = (nodes[0], nodes[1].model_copy(update={"node_id": "small"}))
    result = plan(topo, _inventory(*nodes))
    assert result.group.replicas.max == holds < (topo.spec.replicas.max or 0)
    assert any("lowered" in w for w in result.warnings)
    assert result.group.autoscaling is not None
    assert result.group.autoscaling.max_replicas == holds


def test_wrong_gpu_type_is_refused_with_numbers() -> None:
    topo = _topo("glm45-fp8")
    with pytest.raises(PlanError) as err:
        plan(topo, _inventory(*_nodes("H100", 2)))
    text = str(err.value)
    assert "H200" in text and "To fix" in text


def test_declared_memory_is_checked() -> None:
    topo = _topo("glm45-fp8")
    figures = CapacityFigures(fits=True, mem_fraction=0.8, host_ram_per_node_bytes=3000 * GIB)
    with pytest.raises(PlanError) as err:
        plan(topo, _inventory(*_nodes("H200", 1, ram_gib=2048)), capacity=figures)
    assert "3000 GiB" in str(err.value)
    ok = plan(topo, _inventory(*_nodes("H200", 1, ram_gib=4096)), capacity=figures)
    assert ok.group.bundles[0][DECLARED_MEMORY] == 3000
    assert ok.group.mem_fraction == 0.8
    assert "0.800" in ok.group.ranks[0].engine_argv


def test_capacity_shortfall_stops_the_plan() -> None:
    topo = _topo("glm45-fp8")
    figures = CapacityFigures(
        fits=False, mem_fraction=None, host_ram_per_node_bytes=0, problem="needs 9 GiB more"
    )
    with pytest.raises(PlanError, match="needs 9 GiB more"):
        plan(topo, embedded_inventory(topo), capacity=figures)


def test_real_cluster_runs_the_engine_not_the_simulator() -> None:
    topo = _topo("glm45-fp8")
    real = Inventory(nodes=_nodes("H200", 1), memory_resource="memory", simulated_gpus=False)
    result = plan(topo, real)
    assert result.group.runtime == "sglang"
    assert result.group.ranks[0].argv[2] == "sglang.launch_server"
    assert result.group.bundles[0]["memory"] > 0


def test_embedded_inventory_reuses_existing_nodes() -> None:
    topo = _topo("glm45-bf16")
    first = embedded_inventory(topo)
    assert len(first.nodes) == topo.nodes
    again = embedded_inventory(topo, existing=_nodes("H100", 2))
    assert len(again.nodes) == 2
    mixed = embedded_inventory(_topo("glm45-fp8"), existing=_nodes("H100", 2))
    assert [n.gpu_type for n in mixed.nodes] == ["H100", "H100", "H200"]


def test_inventory_from_ray_nodes() -> None:
    nodes = [
        {
            "NodeID": "a",
            "Alive": True,
            "Resources": {"CPU": 32, "GPU": 8, "accelerator_type:H100": 1, DECLARED_MEMORY: 2048},
            "Labels": {"gpu_type": "H100"},
        },
        {"NodeID": "dead", "Alive": False, "Resources": {"GPU": 8}},
    ]
    inv = from_ray_nodes(nodes, {"a": {"CPU": 30, "GPU": 4, DECLARED_MEMORY: 1024}})
    assert inv.memory_resource == DECLARED_MEMORY and inv.simulated_gpus
    (node,) = inv.nodes
    assert (node.gpu_type, node.gpus_total, node.gpus_free) == ("H100", 8, 4)
    assert node.memory_bytes == 1024 * GIB


def test_diff_against_what_runs() -> None:
    topo = _topo("glm45-fp8")
    running = plan(topo, embedded_inventory(topo)).to_data()
    assert diff_plans(running, running) == []
    spec = topo.spec.model_copy(deep=True)
    spec.replicas.min = spec.replicas.max = spec.replicas.initial = 2
    changed = plan(resolve(spec), embedded_inventory(topo, nodes=1)).to_data()
    lines = diff_plans(running, changed)
    assert any(line.startswith("~ groups[0].replicas.initial: 1 -> 2") for line in lines)
    assert all(line.startswith("+ ") for line in diff_plans(None, running))


def test_replanning_counts_the_running_version_as_free() -> None:
    from controlplane.planner.inventory import release

    topo = _topo("glm45-fp8")
    inventory = _inventory(*_nodes("H200", 1))
    first = plan(topo, inventory)
    bundle = first.group.bundles[0]
    used = inventory.nodes[0].model_copy(
        update={
            "gpus_free": 8 - int(bundle["GPU"]),
            "cpus_free": 32 - bundle["CPU"],
            "memory_bytes": (2048 - bundle[DECLARED_MEMORY]) * GIB,
        }
    )
    busy = _inventory(used)
    assert plan(topo, busy).group.replicas.fits == first.group.replicas.fits - 1
    freed = release(busy, [(used.node_id, bundle)])
    assert plan(topo, freed).digest() == first.digest()
    assert freed.nodes[0].gpus_free == 8


def test_engines_shutdown_timeout_is_the_drain_timeout_serve_uses() -> None:
    from controlplane.autoscale.drain import shutdown_budget_s
    from controlplane.backends.ray.apps import engine_options

    topo = _topo("glm45-fp8-vllm")
    real = Inventory(nodes=_nodes("H200", 1), memory_resource="memory", simulated_gpus=False)
    result = plan(topo, real)
    argv = result.group.ranks[0].argv
    assert result.group.runtime == "vllm"
    drain_s = result.group.graceful_shutdown_s
    assert argv[argv.index("--shutdown-timeout") + 1] == str(math.ceil(drain_s))
    serve = engine_options(result)
    assert serve["graceful_shutdown_timeout_s"] == shutdown_budget_s(drain_s)
    given = resolve(topo.spec.model_copy(update={"replicas": topo.spec.replicas.model_copy(
        update={"drain_timeout": 42.5})}), topo.model)  # fmt: skip
    argv = plan(given, real).group.ranks[0].argv
    assert argv[argv.index("--shutdown-timeout") + 1] == "43"  # whole seconds, rounded up
