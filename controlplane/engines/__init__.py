"""Engines behind one interface (base.py): SGLang, vLLM, TensorRT-LLM and the simulator.

`build_command(topology, context, simulate=False)` picks the builder for the topology's
engine; with `simulate` (no real GPU, or `engine: sim`) it returns the simulator's command,
which mimics the engine's API and metric names (`simulation.flavor`). The simulator models
a whole replica in one process, so node ranks above 0 run nothing of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.engines.base import (
    HOST,
    PORT,
    PYTHON,
    CommandBuilder,
    EngineProcess,
    LaunchCommand,
    LaunchContext,
)
from controlplane.spec.models import EngineKind

if TYPE_CHECKING:
    from controlplane.spec import Topology

__all__ = [
    "CommandBuilder",
    "EngineProcess",
    "LaunchCommand",
    "LaunchContext",
    "build_command",
    "sim_command",
    "target_version",
]


def sim_command(topology: Topology, context: LaunchContext) -> LaunchCommand | None:
    """`python -m controlplane.engines.sim ...` on rank 0; None on other ranks."""
    if context.node_rank > 0:
        return None
    sim = topology.spec.simulation
    flavor = sim.flavor or EngineKind.SGLANG
    argv = (
        PYTHON,
        "-m",
        "controlplane.engines.sim",
        "--spec-json",
        topology.spec.model_dump_json(by_alias=True),
        "--host",
        HOST,
        "--port",
        PORT,
        "--flavor",
        flavor.value,
        "--time-scale",
        f"{sim.time_scale:g}",
        "--seed",
        str(sim.seed),
    )
    return LaunchCommand(argv, {}, serves_http=True)


def build_command(
    topology: Topology, context: LaunchContext, simulate: bool = False
) -> LaunchCommand | None:
    """The launch command of one node rank (None: the rank only holds its GPUs)."""
    if simulate or topology.engine is EngineKind.SIM:
        return sim_command(topology, context)
    if topology.engine is EngineKind.VLLM:
        from controlplane.engines import vllm

        return vllm.build_command(topology, context)
    if topology.engine is EngineKind.TRTLLM:
        from controlplane.engines import trtllm

        return trtllm.build_command(topology, context)
    from controlplane.engines import sglang

    return sglang.build_command(topology, context)


def target_version(kind: EngineKind) -> str:
    """The engine version the command builders target."""
    if kind is EngineKind.VLLM:
        from controlplane.engines import vllm

        return vllm.TARGET_VERSION
    if kind is EngineKind.SGLANG:
        from controlplane.engines import sglang

        return sglang.TARGET_VERSION
    if kind is EngineKind.TRTLLM:
        from controlplane.engines import trtllm

        return trtllm.TARGET_VERSION
    return "sim"
