"""Engines: one registered profile per engine (`registry.py`) and the adapters behind it.

`build_command(topology, context, simulate=False)` asks the topology's engine profile for
its launch command; with `simulate` (no real GPU), or for an engine that is always
simulated (`engine: sim`), it is the simulator's, which mimics the engine's API and metric
names (`simulation.flavor`). The simulator models a whole replica in one process, so node
ranks above 0 run nothing of their own. The builder contract is `base.py`; the process
wrapper that runs a built command is `process.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.engines.base import CommandBuilder, LaunchCommand, LaunchContext
from controlplane.engines.process import EngineProcess
from controlplane.engines.profile import EngineProfile
from controlplane.engines.registry import PROFILES, find_profile, metrics_flavor, profile_for
from controlplane.engines.simulator import sim_command
from controlplane.spec.models import EngineKind

if TYPE_CHECKING:
    from controlplane.spec import Topology

__all__ = [
    "PROFILES",
    "CommandBuilder",
    "EngineProcess",
    "EngineProfile",
    "LaunchCommand",
    "LaunchContext",
    "build_command",
    "find_profile",
    "metrics_flavor",
    "profile_for",
    "sim_command",
    "target_version",
]


def build_command(
    topology: Topology, context: LaunchContext, simulate: bool = False
) -> LaunchCommand | None:
    """The launch command of one node rank (None: the rank only holds its GPUs)."""
    from controlplane.engines.kv_events_args import with_kv_events

    profile = profile_for(topology.engine)
    if simulate or profile.always_simulated:
        command, kind = sim_command(topology, context), EngineKind.SIM
    else:
        command, kind = profile.build(topology, context), topology.engine
    return with_kv_events(command, topology, kind, context.node_rank)


def target_version(kind: EngineKind) -> str:
    """The engine version the command builders target."""
    return profile_for(kind).target_version
