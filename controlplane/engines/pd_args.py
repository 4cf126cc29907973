"""Launch commands of a PD topology's pools: the pool's own command plus the PD flags.

`pd_command(pools, role, context)` is pure. It builds the pool's command with the engine's
ordinary builder (`build_command` on the pool's resolved topology, as for any colocated
replica) and adds what disaggregation needs. The planner (planner/pd_plan.py) launches
exactly these commands with `port=BOOTSTRAP_PORT`, a placeholder the rank worker fills
with a free port (several replicas share a host); the engines' parsers check them
(tests/engines/test_pd_parsers.py). With `simulate`, the pool runs the simulator with
`--pd-role` (and `--pd-link-gbps` when the topology declares a link speed): the
simulator serves its KV bootstrap on its own HTTP port.

Flags, pinned to the engine versions glmctl targets:
- SGLang 0.5.23 (sglang/srt/arg_groups/fields/disagg.py): `--disaggregation-mode
  prefill|decode`, `--disaggregation-transfer-backend`, `--disaggregation-bootstrap-port`
  (served by the prefill server; decode learns it per request from the router),
  `--disaggregation-ib-device` (comma-separated; unset: the backend picks).
- vLLM 0.32 (vllm/config/kv_transfer.py): `--kv-transfer-config` JSON with `kv_connector`,
  `kv_role` (NIXL: `kv_both`, the proxy decides who prefills; the other connectors:
  producer on prefill, consumer on decode) and `kv_load_failure_policy`; NIXL's side
  channel from VLLM_NIXL_SIDE_CHANNEL_HOST / _PORT (vllm/envs.py); RDMA devices for UCX
  from UCX_NET_DEVICES; ExampleConnector (v1/example_connector.py, disk-based, one host)
  reads `kv_connector_extra_config.shared_storage_path`, the same folder on both pools
  (spec/disaggregation.py `shared_storage_path`).
"""

from __future__ import annotations

import json
from dataclasses import replace

from controlplane.engines import build_command
from controlplane.engines.base import HOST, LaunchCommand, LaunchContext
from controlplane.engines.simulator import sim_command
from controlplane.spec.disaggregation import shared_storage_path
from controlplane.spec.models import EngineKind
from controlplane.spec.pd_engines import VLLM_PD
from controlplane.spec.pd_pools import ROLES, PdPools

__all__ = ["pd_command", "pd_flags"]


def pd_command(
    pools: PdPools,
    role: str,
    context: LaunchContext,
    simulate: bool = False,
    port: str | None = None,
) -> LaunchCommand | None:
    """One node rank of one replica of the `role` pool (None: the rank runs nothing).

    `port`: the bootstrap / side-channel port as passed (a placeholder such as
    `{bootstrap_port}`); None: the topology's (`transfer.bootstrap_port` or the default)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    topology = pools.prefill if role == "prefill" else pools.decode
    if simulate or topology.engine is EngineKind.SIM:
        return _sim(pools, role, context)
    command = build_command(topology, context)
    if command is None:
        return command
    argv, env = pd_flags(pools, role, port)
    return replace(command, argv=(*command.argv, *argv), env={**command.env, **env})


def _sim(pools: PdPools, role: str, context: LaunchContext) -> LaunchCommand | None:
    """The simulator as one replica of the pool (engines/sim: `--pd-role`, `--pd-link-gbps`)."""
    topology = pools.prefill if role == "prefill" else pools.decode
    command = sim_command(topology, context)
    if command is None:
        return None
    argv = ["--pd-role", role]
    gbps = pools.spec.network.link_gbps
    if gbps is not None:  # declared: else the simulator's own default for the transport
        argv += ["--pd-link-gbps", f"{gbps:g}"]
    return replace(command, argv=(*command.argv, *argv))


def pd_flags(
    pools: PdPools, role: str, port: str | None = None
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The argv and environment disaggregation adds to a `role` pool's command."""
    given = port if port is not None else str(pools.port)
    if pools.topology.engine is EngineKind.VLLM:
        return _vllm(pools, role, given)
    return _sglang(pools, role, given)


def _sglang(pools: PdPools, role: str, port: str) -> tuple[tuple[str, ...], dict[str, str]]:
    argv: list[str] = [
        "--disaggregation-mode",
        role,
        "--disaggregation-transfer-backend",
        pools.backend,
    ]
    if role == "prefill":
        argv += ["--disaggregation-bootstrap-port", port]
    devices = pools.spec.network.ib_devices
    if devices:
        argv += ["--disaggregation-ib-device", ",".join(devices)]
    return tuple(argv), {}


def _vllm(pools: PdPools, role: str, port: str) -> tuple[tuple[str, ...], dict[str, str]]:
    nixl = pools.backend.startswith("Nixl")
    # NIXL: the proxy decides who prefills; the other connectors are told their side.
    one_way = "kv_producer" if role == "prefill" else "kv_consumer"
    kv_role = "kv_both" if nixl else one_way
    config: dict[str, object] = {
        "kv_connector": pools.backend,
        "kv_role": kv_role,
        "kv_load_failure_policy": pools.spec.transfer.kv_load_failure_policy,
    }
    if pools.backend in VLLM_PD.shared_storage_backends:
        folder = shared_storage_path(pools.spec, pools.topology.name)
        config["kv_connector_extra_config"] = {"shared_storage_path": folder}
    env: dict[str, str] = {}
    if nixl:
        env["VLLM_NIXL_SIDE_CHANNEL_HOST"] = HOST
        env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = port
    devices = pools.spec.network.ib_devices
    if devices:
        env["UCX_NET_DEVICES"] = ",".join(devices)
    return ("--kv-transfer-config", json.dumps(config, separators=(",", ":"))), env
