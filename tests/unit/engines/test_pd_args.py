"""PD launch commands: the pool's ordinary command plus the engine's PD flags."""

from __future__ import annotations

import json

import pytest
import yaml

from controlplane.engines import LaunchContext, build_command
from controlplane.engines.pd_args import pd_command
from tests.unit.spec.pd_helpers import AIR_PD, H200_PD, pools_of, shipped, with_pools


def flag(argv: tuple[str, ...], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


@pytest.mark.parametrize("role", ["prefill", "decode"])
def test_sglang_pools_extend_their_colocated_command(role: str) -> None:
    pools = shipped(AIR_PD)
    topo = pools.prefill if role == "prefill" else pools.decode
    base = build_command(topo, LaunchContext())
    command = pd_command(pools, role, LaunchContext())
    assert base is not None and command is not None
    assert command.argv[: len(base.argv)] == base.argv
    assert flag(command.argv, "--disaggregation-mode") == role
    assert flag(command.argv, "--disaggregation-transfer-backend") == "mooncake"
    assert flag(command.argv, "--disaggregation-ib-device") == "mlx5_0"
    port = flag(command.argv, "--disaggregation-bootstrap-port")
    assert port == ("8998" if role == "prefill" else None)  # prefill serves the bootstrap


def test_every_node_rank_of_a_multi_node_pool_gets_the_flags() -> None:
    pools = shipped(H200_PD)
    assert pools.decode.nodes == 2
    for rank in range(pools.decode.nodes):
        command = pd_command(pools, "decode", LaunchContext(rank, pools.decode.nodes))
        assert command is not None and flag(command.argv, "--disaggregation-mode") == "decode"


@pytest.mark.parametrize("role", ["prefill", "decode"])
def test_vllm_pools_get_a_kv_transfer_config(role: str) -> None:
    pools = pools_of(with_pools(AIR_PD, {}, {}, engine="vllm"))
    command = pd_command(pools, role, LaunchContext())
    assert command is not None
    config = json.loads(flag(command.argv, "--kv-transfer-config") or "{}")
    assert config == {
        "kv_connector": "NixlConnector",
        "kv_role": "kv_both",
        "kv_load_failure_policy": "fail",
    }
    assert command.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "5600"
    assert command.env["UCX_NET_DEVICES"] == "mlx5_0"


@pytest.mark.parametrize(
    ("role", "kv_role"), [("prefill", "kv_producer"), ("decode", "kv_consumer")]
)
def test_vllm_example_connector_shares_one_folder(role: str, kv_role: str) -> None:
    data = yaml.safe_load(with_pools(AIR_PD, {}, {}, engine="vllm"))
    data["disaggregation"]["transfer"] = {"backend": "ExampleConnector"}
    pools = pools_of(yaml.safe_dump(data))
    command = pd_command(pools, role, LaunchContext())
    assert command is not None
    config = json.loads(flag(command.argv, "--kv-transfer-config") or "{}")
    folder = f"/tmp/glmctl-kv/{pools.topology.name}"  # glmctl's default: one per deployment
    assert config == {
        "kv_connector": "ExampleConnector",
        "kv_role": kv_role,
        "kv_load_failure_policy": "fail",
        "kv_connector_extra_config": {"shared_storage_path": folder},
    }
    assert "VLLM_NIXL_SIDE_CHANNEL_PORT" not in command.env
    data["disaggregation"]["transfer"]["shared_storage_path"] = "/data/kv"
    given = pd_command(pools_of(yaml.safe_dump(data)), role, LaunchContext())
    assert given is not None
    config = json.loads(flag(given.argv, "--kv-transfer-config") or "{}")
    assert config["kv_connector_extra_config"] == {"shared_storage_path": "/data/kv"}


def test_an_unknown_role_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="role"):
        pd_command(shipped(AIR_PD), "both", LaunchContext())


def test_a_given_port_replaces_the_topologys() -> None:
    """The planner passes the `{bootstrap_port}` placeholder: replicas share hosts."""
    pools = shipped(AIR_PD)
    command = pd_command(pools, "prefill", LaunchContext(), port="{bootstrap_port}")
    assert command is not None
    assert flag(command.argv, "--disaggregation-bootstrap-port") == "{bootstrap_port}"
    vllm = pools_of(with_pools(AIR_PD, {}, {}, engine="vllm"))
    command = pd_command(vllm, "decode", LaunchContext(), port="{bootstrap_port}")
    assert command is not None
    assert command.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "{bootstrap_port}"


@pytest.mark.parametrize("role", ["prefill", "decode"])
def test_simulated_pools_run_the_simulator_with_their_role(role: str) -> None:
    pools = shipped(H200_PD)
    topo = pools.prefill if role == "prefill" else pools.decode
    base = build_command(topo, LaunchContext(), simulate=True)
    command = pd_command(pools, role, LaunchContext(), simulate=True)
    assert base is not None and command is not None
    assert command.argv == (*base.argv, "--pd-role", role, "--pd-link-gbps", "400")
    assert pd_command(pools, role, LaunchContext(1, 2), simulate=True) is None  # one process
