"""`glmctl`: one typer app; each command group lives in its own module and registers itself."""

from __future__ import annotations

import importlib
import sys
import traceback

import typer
from rich.markup import escape

from controlplane import __version__
from controlplane.cli.options import err_console
from controlplane.errors import UserError

# Command groups, in the order of the pipeline (see controlplane/__init__.py).
COMMAND_MODULES = (
    "spec_cmds",  # validate, show, schema, models, gpus
    "capacity_cmd",  # capacity
    "render_cmd",  # render (Ray Serve config, KubeRay manifests)
    "deploy_cmds",  # plan, apply, status, scale, delete
    "sim_cmd",  # sim serve
    "router_cmd",  # router serve
    "observe_cmds",  # dashboards render/push, rules render, top
)

app = typer.Typer(
    name="glmctl",
    help="Serve GLM-4.5 from one topology file: size it, plan it, run it, watch it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    _state["debug"] = debug
    if version:
        typer.echo(f"glmctl {__version__}")
        raise typer.Exit()


for _name in COMMAND_MODULES:
    importlib.import_module(f"controlplane.cli.{_name}").register(app)


def _debug() -> bool:
    """`--debug`, or GLMCTL_DEBUG set (read through settings.py)."""
    if _state["debug"] or "--debug" in sys.argv:
        return True
    from controlplane.settings import get_settings

    try:
        return get_settings().debug
    except UserError:
        return False


def run() -> None:
    """Console-script entry: user errors print as one paragraph, exit code 2."""
    try:
        app(standalone_mode=False)
    except UserError as exc:
        if _debug():
            traceback.print_exc()
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # click usage errors and bugs
        import click
        from typer.exceptions import TyperException  # typer >= 0.2x vendors its own click

        if isinstance(exc, click.ClickException | TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(exc.exit_code)
        if _debug():
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc}"
            " (run again with --debug for the traceback)",
            highlight=False,
        )
        sys.exit(1)


if __name__ == "__main__":
    run()
