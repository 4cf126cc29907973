"""`glmctl doctor`: one line per check with its fix; exit 1 when the next apply cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from controlplane.catalog.gpus import GIB
from controlplane.cli.options import OutputFormat, OutputOption, console, emit
from controlplane.errors import UserError

MARKS = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def doctor(
    file: Annotated[
        Path | None,
        typer.Argument(help="Topology to check memory and ports for.", show_default=False),
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="Also check this Ray cluster's inventory.")
    ] = None,
    memory_gib: Annotated[
        float | None,
        typer.Option("--memory-gib", help="Declare the free memory (GiB) instead of measuring."),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Python, extras, redis-server, prometheus, Ray, memory, ports, state dir, engine cache."""
    from controlplane.doctor.checks import Status, all_checks
    from controlplane.doctor.probe import gather

    if memory_gib is not None and memory_gib < 0:
        raise UserError(f"--memory-gib {memory_gib:g} is not a memory size.",
                        fix="pass a positive number of GiB.")  # fmt: skip
    topology = None
    if file is not None:
        from controlplane.spec import load_topology

        topology = load_topology(file)
    memory = int(memory_gib * GIB) if memory_gib is not None else None
    checks = all_checks(gather(topology, memory, address))
    if output is not OutputFormat.TEXT:
        emit([{"check": c.name, "status": c.status.value, "detail": c.detail, "fix": c.fix}
              for c in checks], output)  # fmt: skip
    else:
        for c in checks:
            fix = f" [bold]To fix:[/] {escape(c.fix)}" if c.fix else ""
            line = f"{MARKS[c.status.value]} {c.name:14s} {escape(c.detail)}{fix}"
            console.print(line, highlight=False, soft_wrap=True)
    failed = [c.name for c in checks if c.status is Status.FAIL]
    if failed:
        if output is OutputFormat.TEXT:
            console.print(
                f"[red]{len(failed)} problem(s) stop `glmctl apply`:[/] {', '.join(failed)}"
            )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    app.command("doctor")(doctor)
