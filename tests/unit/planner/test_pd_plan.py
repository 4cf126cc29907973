"""plan() of a PD topology: a prefill and a decode group, each its pool's, with PD commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.engines import LaunchContext
from controlplane.engines.base import BOOTSTRAP_PORT
from controlplane.engines.pd_args import pd_command
from controlplane.planner import (
    DECLARED_MEMORY,
    Inventory,
    InventoryNode,
    PlanError,
    embedded_inventory,
    plan,
    replicas_that_fit,
)
from controlplane.planner.capacity import capacity_figures
from controlplane.planner.inventory import GIB
from controlplane.planner.pd_plan import reserve
from controlplane.planner.plan import drain_seconds
from controlplane.render.ray_serve import reference_plan
from controlplane.spec import load_topology
from controlplane.spec.pd_pools import pd_pools
from tests.unit.spec.pd_helpers import AIR_PD, H200_PD, topology, variant, with_pools

PD_FILES = [AIR_PD, H200_PD]


def _nodes(gpu: str, count: int, gpus: int = 8) -> tuple[InventoryNode, ...]:
    return tuple(
        InventoryNode(
            node_id=f"{gpu}-{i}", gpu_type=gpu, gpus_total=gpus, gpus_free=gpus,
            cpus_total=32, cpus_free=32, memory_bytes=2048 * GIB,
        )
        for i in range(count)
    )  # fmt: skip


@pytest.mark.parametrize("path", PD_FILES, ids=lambda p: p.stem)
def test_a_pd_topology_plans_one_group_per_pool(path: Path) -> None:
    topo = load_topology(path)
    pools = pd_pools(topo)
    assert pools is not None
    result = plan(topo, embedded_inventory(topo))
    assert [g.pd for g in result.groups] == ["prefill", "decode"]
    assert [g.name for g in result.groups] == [f"{topo.name}-prefill", f"{topo.name}-decode"]
    for group, pool in zip(result.groups, (pools.prefill, pools.decode), strict=True):
        assert (group.nodes, group.gpus_per_node) == (pool.nodes, pool.gpus_per_node)
        assert group.replicas.initial == pool.spec.replicas.initial
        assert group.served_model_name == topo.served_model_name  # one name for both
        assert group.simulated  # the embedded cluster declares its GPUs
    assert result.initial_replicas == sum(g.replicas.initial for g in result.groups)
    data = result.to_data()
    assert [g["pd"] for g in data["groups"]] == ["prefill", "decode"]
    assert "disaggregation" in data["spec"]
    json.dumps(data)  # serialisable as is


def test_the_air_layout_fits_one_eight_gpu_node() -> None:
    """The GLM-4.5 README's layout: prefill TP4 + decode TP4 on one 8 x H100 node."""
    topo = load_topology(AIR_PD)
    inventory = embedded_inventory(topo)
    assert [(n.gpu_type, n.gpus_total) for n in inventory.nodes] == [("H100", 8)]
    prefill, decode = plan(topo, inventory).groups
    assert (prefill.gpus_per_node, decode.gpus_per_node) == (4, 4)
    assert prefill.strategy == decode.strategy == "STRICT_PACK"


def test_the_h200_layout_gets_nodes_for_both_pools() -> None:
    topo = load_topology(H200_PD)
    inventory = embedded_inventory(topo)
    assert len(inventory.nodes) == 4  # 2 prefill replicas x 1 node + 1 decode replica x 2
    prefill, decode = plan(topo, inventory).groups
    assert (prefill.nodes, prefill.replicas.initial) == (1, 2)
    assert (decode.nodes, decode.strategy) == (2, "STRICT_SPREAD")
    assert decode.ranks[1].argv == ()  # the simulator models a replica in one process


def test_decode_is_placed_on_what_prefill_leaves() -> None:
    """One 8-GPU node holds one P (4) and one D (4); two prefill replicas leave no room."""
    text = with_pools(AIR_PD, {"replicas": 2}, {})
    with pytest.raises(PlanError) as caught:
        plan(topology(text, "pd-full"), Inventory(nodes=_nodes("H100", 1),
             memory_resource=DECLARED_MEMORY, simulated_gpus=True))  # fmt: skip
    assert "pd-full-decode" in str(caught.value) and "To fix:" in str(caught.value)
    inventory = Inventory(nodes=_nodes("H100", 2), memory_resource=DECLARED_MEMORY,
                          simulated_gpus=True)  # fmt: skip
    prefill, decode = plan(topology(text, "pd-two"), inventory).groups
    assert (prefill.replicas.initial, decode.replicas.initial) == (2, 1)


def test_reserve_takes_the_replicas_off_the_inventory() -> None:
    topo = load_topology(AIR_PD)
    inventory = embedded_inventory(topo)
    prefill = plan(topo, inventory).groups[0]
    left = reserve(inventory, prefill, 1)
    assert [n.gpus_free for n in left.nodes] == [4]
    assert replicas_that_fit(left, "H100", list(prefill.bundles)) == 1
    assert [n.gpus_free for n in reserve(left, prefill, 5).nodes] == [0]  # stops when full
    assert inventory.nodes[0].gpus_free == 8  # pure


@pytest.mark.parametrize("path", PD_FILES, ids=lambda p: p.stem)
def test_real_commands_are_the_pd_commands_with_a_bootstrap_placeholder(path: Path) -> None:
    """On real GPUs each rank runs engines/pd_args.py's command, the one the engines'
    parsers check (tests/engines/test_pd_parsers.py takes it from this plan)."""
    topo = load_topology(path)
    pools = pd_pools(topo)
    assert pools is not None
    result = reference_plan(topo)
    for group, pool in zip(result.groups, (pools.prefill, pools.decode), strict=True):
        assert not group.simulated
        fraction = capacity_figures(pool).mem_fraction
        for rank in group.ranks:
            context = LaunchContext(rank.rank, pool.nodes, mem_fraction=fraction,
                                    shutdown_timeout_s=drain_seconds(pool))  # fmt: skip
            command = pd_command(pools, group.pd, context, port=BOOTSTRAP_PORT)
            assert command is not None and rank.argv == command.argv
        argv = group.ranks[0].argv
        mode = argv[argv.index("--disaggregation-mode") + 1]
        assert mode == group.pd
        port = "--disaggregation-bootstrap-port"
        assert (argv[argv.index(port) + 1] if port in argv else None) == (
            BOOTSTRAP_PORT if group.pd == "prefill" else None
        )


def test_vllm_pools_take_the_side_channel_port_from_the_placeholder() -> None:
    topo = topology(with_pools(AIR_PD, {}, {}, engine="vllm"), "pd-vllm")
    for group in reference_plan(topo).groups:
        assert group.ranks[0].env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == BOOTSTRAP_PORT
        assert "--kv-transfer-config" in group.ranks[0].argv


def test_simulated_pools_run_the_simulator_with_their_role_and_link() -> None:
    """The pdsim contract: the pool's colocated spec plus --pd-role and --pd-link-gbps
    (only when the topology declares the link speed)."""
    h200 = plan(load_topology(H200_PD), embedded_inventory(load_topology(H200_PD)))
    for group in h200.groups:
        argv = group.ranks[0].argv
        assert argv[1:3] == ("-m", "controlplane.engines.sim")
        assert argv[argv.index("--pd-role") + 1] == group.pd
        assert argv[argv.index("--pd-link-gbps") + 1] == "400"
        spec = json.loads(argv[argv.index("--spec-json") + 1])
        assert "disaggregation" not in spec and spec["name"] == group.name  # the pool's own
        assert "--disaggregation-mode" in group.ranks[0].engine_argv  # the real one, shown
    air = load_topology(AIR_PD)
    for group in plan(air, embedded_inventory(air)).groups:
        assert "--pd-link-gbps" not in group.ranks[0].argv  # none declared


def test_an_engine_sim_pd_topology_plans_simulated_pools() -> None:
    topo = topology(variant(AIR_PD, engine="sim"), "pd-sim")
    for group in plan(topo, embedded_inventory(topo)).groups:
        assert (group.engine, group.runtime) == ("sim", "sim")
        assert "--pd-role" in group.ranks[0].argv


def test_colocated_plans_carry_no_pd() -> None:
    topo = load_topology(AIR_PD.with_name("glm45-air-fp8-h100x2.yaml"))
    result = plan(topo, embedded_inventory(topo))
    assert [g.pd for g in result.groups] == [""] and result.groups[0].name == "engine"
    assert all("pd" not in g for g in result.to_data()["groups"])
    assert "{bootstrap_port}" not in " ".join(result.groups[0].ranks[0].engine_argv)
