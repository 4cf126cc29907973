"""Options shared by every command group, and the one way results are printed."""

from __future__ import annotations

import json
import sys
import traceback
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    TEXT = "text"
    YAML = "yaml"
    JSON = "json"


OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="text (tables), yaml or json.")
]


def complete_topology(incomplete: str) -> list[str]:
    """Shell completion of a topology file: YAML files and folders starting with `incomplete`."""
    from pathlib import Path

    folder, _, prefix = incomplete.rpartition("/")
    base = Path(folder or ".")
    if not base.is_dir():
        return []
    found = []
    for entry in sorted(base.iterdir()):
        if not entry.name.startswith(prefix) or entry.name.startswith("."):
            continue
        shown = f"{folder}/{entry.name}" if folder else entry.name
        if entry.is_dir():
            found.append(f"{shown}/")
        elif entry.suffix in (".yaml", ".yml"):
            found.append(shown)
    return found


def emit(data: Any, fmt: OutputFormat) -> None:
    """Print plain data as YAML or JSON (text output is each command's own)."""
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())


def debug_enabled(ctx: typer.Context) -> bool:
    """True under `glmctl --debug ...` (the root command's option)."""
    return bool(ctx.find_root().params.get("debug"))


def print_user_error(
    exc: BaseException, prefix: str = "[bold red]error:[/]", debug: bool = False
) -> None:
    """One paragraph per problem on stderr; the traceback first under --debug."""
    if debug:
        sys.stderr.write("".join(traceback.format_exception(exc)))
        sys.stderr.flush()
    err_console.print(f"{prefix} {escape(str(exc))}", highlight=False, soft_wrap=True)
