"""Spec commands: validate, show, schema, and the catalog tables (models, gpus)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from controlplane.catalog import GPUS, MODELS
from controlplane.cli.options import (
    OutputFormat,
    OutputOption,
    complete_topology,
    console,
    debug_enabled,
    emit,
    print_user_error,
)
from controlplane.errors import SpecError, UserError
from controlplane.spec import Topology, load_topology, topology_json_schema
from controlplane.spec.pd_pools import pd_pools

Files = Annotated[
    list[Path],
    typer.Argument(
        help="Topology YAML files.", show_default=False, autocompletion=complete_topology
    ),
]
File = Annotated[
    Path,
    typer.Argument(
        help="A topology YAML file.", show_default=False, autocompletion=complete_topology
    ),
]


def topology_summary(topo: Topology) -> str:
    """One line a person reads: what runs where, split how."""
    s = topo.spec
    spec_txt = "off"
    if topo.speculative:
        sp = topo.speculative
        assert sp.algorithm is not None
        spec_txt = f"{sp.algorithm.value} {sp.num_steps}/{sp.eagle_topk}/{sp.num_draft_tokens}"
    return (
        f"{topo.name}: {topo.model.display_name} {topo.precision.value} on"
        f" {topo.gpus_per_replica} x {topo.gpu.name} ({topo.nodes} node(s)),"
        f" TP {topo.tp} PP {topo.pp} EP {topo.ep} DP {topo.dp}"
        f"{' dp-attention' if s.parallelism.dp_attention else ''},"
        f" context {topo.context_length}, {s.max_num_seqs} seqs, KV {topo.kv_cache_dtype.value},"
        f" speculative {spec_txt}, engine {topo.engine.value} {s.engine.version},"
        f" replicas {s.replicas.min}..{s.replicas.max}, router {s.router.policy.value}"
    )


def resolved_dict(topo: Topology) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        topo.spec.model_dump_json(by_alias=True, exclude_none=True)
    )
    return data


def validate(ctx: typer.Context, files: Files) -> None:
    """Check topology files; print each one's summary or every problem with its fix."""
    failed = 0
    for path in files:
        try:
            topo = load_topology(path)
            pd_pools(topo)  # a PD topology's pools resolve as topologies of their own
        except UserError as exc:
            failed += 1
            print_user_error(exc, prefix="[red]✗[/]", debug=debug_enabled(ctx))
            continue
        console.print(
            f"[green]✓[/] {escape(str(path))}: {escape(topology_summary(topo))}",
            highlight=False,
            soft_wrap=True,
        )
        for warning in topo.warnings:
            console.print(
                f"  [yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True
            )
    if failed:
        raise SpecError(
            [
                f"{failed} of {len(files)} topology file(s) failed validation. To fix: correct"
                " each problem listed above and run `glmctl validate` again."
            ]
        )


def show(file: File, output: OutputOption = OutputFormat.YAML) -> None:
    """Print the resolved spec, every default filled in."""
    topo = load_topology(file)
    if output is OutputFormat.TEXT:
        console.print(escape(topology_summary(topo)), highlight=False, soft_wrap=True)
        return
    emit(resolved_dict(topo), output)


def schema() -> None:
    """Print the topology JSON schema (generated from the spec models)."""
    typer.echo(json.dumps(topology_json_schema(), indent=2))


def models(output: OutputOption = OutputFormat.TEXT) -> None:
    """List catalog models with their derived parameter counts."""
    rows = [
        {
            "name": m.name,
            "repo": m.hf_repo,
            "weights": m.weight_format.value,
            "precisions": [p.value for p in m.precisions],
            "total_params_b": round(m.arch.total_params() / 1e9, 1),
            "active_params_b": round(m.arch.active_params() / 1e9, 1),
            "layers": m.arch.num_layers,
            "context": m.arch.max_context,
            "mtp_layers": m.arch.num_nextn_layers,
        }
        for m in MODELS
    ]
    if output is not OutputFormat.TEXT:
        emit(rows, output)
        return
    columns = ("name", "repo", "weights", "precisions", "params (B)", "active (B)", "layers")
    cells = [[_cell(v) for v in r.values()] for r in rows]
    _print_table(
        "Models (parameters derived from the architecture)", (*columns, "context", "MTP"), cells
    )


def gpus(output: OutputOption = OutputFormat.TEXT) -> None:
    """List GPU types: memory, bandwidth, FLOP/s."""
    rows = [
        {
            "name": g.name,
            "display": g.display_name,
            "memory_gib": round(g.memory_gib, 1),
            "hbm_tb_s": g.hbm_bandwidth / 1e12,
            "bf16_tflops": g.bf16_flops / 1e12,
            "fp8_tflops": g.fp8_flops / 1e12 if g.fp8_flops else None,
            "interconnect_gb_s": g.interconnect_bandwidth / 1e9,
        }
        for g in GPUS
    ]
    if output is not OutputFormat.TEXT:
        emit(rows, output)
        return
    columns = ("name", "GPU", "memory (GiB)", "HBM (TB/s)", "BF16 TFLOP/s", "FP8 TFLOP/s")
    cells = [[_cell(v) for v in r.values()] for r in rows]
    _print_table("GPU types", (*columns, "link (GB/s)"), cells)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _print_table(title: str, columns: tuple[str, ...], cells: list[list[str]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in cells:
        table.add_row(*row)
    console.print(table)


def register(app: typer.Typer) -> None:
    for command in (validate, show, schema, models, gpus):
        app.command()(command)
