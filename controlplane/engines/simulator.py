"""The simulator's command line, built in one place for the planner and `SimServer`.

`python -m controlplane.engines.sim --spec-json JSON --host H --port P [--flavor F]
--time-scale X --seed S [options]` (the flags `sim/__main__.py` parses). The planner's
command holds placeholders (`{python}`, `{host}`, `{port}`) that the worker fills in;
`SimServer.start` passes real values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.engines.base import HOST, PORT, PYTHON, LaunchCommand, LaunchContext
from controlplane.spec.models import EngineKind

if TYPE_CHECKING:
    from controlplane.spec import Topology

SIM_MODULE = "controlplane.engines.sim"
DEFAULT_FLAVOR = EngineKind.SGLANG  # what `engine: sim` mimics unless `simulation.flavor` says


def sim_argv(
    python: str,
    spec_json: str,
    host: str,
    port: str,
    flavor: EngineKind | str | None,
    time_scale: float,
    seed: int,
    options: dict[str, str] | None = None,
) -> list[str]:
    """`python -m controlplane.engines.sim ...`; `options` adds `--name value` pairs in order
    (`{"kv-tokens": "1000"}` -> `--kv-tokens 1000`)."""
    argv = [python, "-m", SIM_MODULE, "--spec-json", spec_json, "--host", host, "--port", port]
    if flavor is not None:
        argv += ["--flavor", EngineKind(flavor).value]
    scale = f"{time_scale:g}"  # short for plans; exact when `:g` would round
    scale = scale if float(scale) == time_scale else repr(time_scale)
    argv += ["--time-scale", scale, "--seed", str(seed)]
    for name, value in (options or {}).items():
        argv += [f"--{name}", value]
    return argv


def sim_command(topology: Topology, context: LaunchContext) -> LaunchCommand | None:
    """`python -m controlplane.engines.sim ...` on rank 0; None on other ranks (the
    simulator models a whole replica in one process)."""
    if context.node_rank > 0:
        return None
    sim = topology.spec.simulation
    spec_json = topology.spec.model_dump_json(by_alias=True)
    flavor = sim.flavor or DEFAULT_FLAVOR
    argv = sim_argv(PYTHON, spec_json, HOST, PORT, flavor, sim.time_scale, sim.seed)
    return LaunchCommand(tuple(argv), {}, serves_http=True)
