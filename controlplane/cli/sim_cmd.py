"""`glmctl sim serve`: run a simulated engine for a topology (no GPU needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controlplane.engines.registry import simulator_flavors

# The engines the simulator can mimic (their profiles: engines/registry.py).
FLAVORS = simulator_flavors()


def _flavor(value: str | None) -> str | None:
    if value is not None and value not in FLAVORS:
        raise typer.BadParameter(f"`{value}` is not one of {', '.join(FLAVORS)}.")
    return value


def _positive(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise typer.BadParameter(
            f"{value:g} is not above 0 (1 = real time, 10 = ten times faster)."
        )
    return value


def _link(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise typer.BadParameter(f"{value:g} Gb/s is not above 0 (RDMA NDR: 400).")
    return value


def _pd_role(value: str | None) -> str | None:
    if value is not None and value not in ("prefill", "decode"):
        raise typer.BadParameter(f"`{value}` is not prefill or decode.")
    return value


def serve_cmd(
    file: Annotated[Path, typer.Argument(help="Topology YAML.", exists=True, dir_okay=False)],
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port to listen on (127.0.0.1).")
    ] = 8100,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    flavor: Annotated[
        str | None,
        typer.Option(
            callback=_flavor,
            help=f"API and metric names to mimic: {', '.join(FLAVORS)} (default: spec).",
        ),
    ] = None,
    time_scale: Annotated[
        float | None,
        typer.Option(
            callback=_positive, help="Simulated seconds per wall second (10 = 10x faster)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for text and acceptance draws.")] = None,
    kv_tokens: Annotated[
        int | None, typer.Option(min=1, help="Override the KV token budget.")
    ] = None,
    pd_role: Annotated[
        str | None,
        typer.Option(
            callback=_pd_role,
            help="Serve one replica of a prefill/decode pool (of a PD topology: that pool),"
            " speaking the flavour's PD protocol (docs/guides/disaggregation.md).",
        ),
    ] = None,
    pd_link_gbps: Annotated[
        float | None,
        typer.Option(
            callback=_link,
            help="KV transfer link speed in Gb/s (default: the topology's network, else 400).",
        ),
    ] = None,
) -> None:
    """Serve an OpenAI-compatible simulated replica of FILE until Ctrl-C."""
    from controlplane.doctor.extras import require

    require("uvicorn", "orjson")
    from controlplane.engines.sim.server import SimOptions, build_app, serve
    from controlplane.spec import EngineKind, load_topology

    topo = load_topology(file)
    options = SimOptions(
        flavor=EngineKind(flavor) if flavor else None,
        time_scale=time_scale,
        seed=seed,
        kv_tokens=kv_tokens,
        pd_role=pd_role,
        pd_link_gbps=pd_link_gbps,
    )
    sim_app = build_app(topo, options)
    cfg = sim_app.scheduler.config
    typer.echo(
        f"simulating {sim_app.info.topology} ({sim_app.info.flavor.value} flavour) on http://{host}:{port}"
        f"  model={sim_app.info.limits.served_model_name} kv_tokens={cfg.kv_token_capacity}"
        f" max_num_seqs={cfg.max_num_seqs} time_scale={cfg.time_scale}"
        + (f" pd_role={pd_role}" if pd_role else "")
    )
    serve(sim_app, host, port)


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    sim = typer.Typer(help="Simulated engine: the topology's timing, KV budget and metrics.")
    app.add_typer(sim, name="sim")
    sim.command("serve")(serve_cmd)
