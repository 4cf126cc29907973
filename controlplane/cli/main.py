"""`glmctl`: one typer app; each command group lives in its own module and registers itself.

Start-up imports only what the command being run uses: the table below names each module's
commands, and a module is imported (and its `register(app)` run) the first time one of its
commands is looked up. `glmctl --version` imports no command module; `glmctl --help` and
completion import them all (their top-level imports stay light: heavy ones go inside the
commands).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
from typer.core import TyperGroup

from controlplane import __version__
from controlplane.errors import UserError

# Command groups, in the order of the pipeline (see controlplane/__init__.py). One line per
# module under controlplane/cli/: its name -> the top-level commands (or sub-command groups)
# its `register(app)` adds. A new command group adds one line here.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "spec_cmds": ("validate", "show", "schema", "models", "gpus"),
    "init_cmd": ("init",),
    "capacity_cmd": ("capacity",),
    "calibrate_cmd": ("calibrate",),
    "render_cmd": ("render",),
    "deploy_cmds": ("plan", "apply", "status", "scale", "delete", "demo"),
    "doctor_cmd": ("doctor",),
    "sim_cmd": ("sim",),
    "router_cmd": ("router",),
    "observe_cmds": ("dashboards", "rules", "top"),
    "loadtest_cmds": ("loadtest", "sweep"),
    "keys_cmd": ("keys",),
}


def _module_commands(module: str) -> dict[str, Any]:
    """Import `controlplane.cli.<module>`, run its `register`, return its click commands.

    A module that cannot be imported because an extra is not installed gives stand-ins
    that name the extra (in `--help` and when run), so the other commands still work.
    """
    sub = typer.Typer()
    try:
        importlib.import_module(f"controlplane.cli.{module}").register(sub)
    except ModuleNotFoundError as exc:
        from controlplane.doctor.extras import missing_extra_message

        message = missing_extra_message(exc.name)
        if message is None:
            raise
        for name in COMMAND_MODULES[module]:
            _stand_in(sub, name, message)
    return dict(typer.main.get_group(sub).commands)


def _stand_in(sub: typer.Typer, name: str, message: str) -> None:
    """A command `name` that takes any arguments and raises `message` as a UserError."""
    settings = {"ignore_unknown_options": True, "allow_extra_args": True}

    def unavailable() -> None:
        raise UserError(message)

    sub.command(name, help=f"(not installed) {message}", context_settings=settings)(unavailable)


class LazyCommands(MutableMapping[str, Any]):
    """Command name -> click command, importing a command's module on first lookup."""

    def __init__(self, modules: dict[str, tuple[str, ...]]) -> None:
        self._module_of = {name: module for module, names in modules.items() for name in names}
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            module = self._module_of[name]  # KeyError: no such command
            commands = _module_commands(module)
            promised = {n for n, m in self._module_of.items() if m == module}
            if missing := promised - set(commands):
                raise LookupError(f"controlplane.cli.{module} did not register {missing}")
            self._loaded.update(commands)
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command
        self._module_of.setdefault(name, "")

    def __delitem__(self, name: str) -> None:
        self._loaded.pop(name, None)
        del self._module_of[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._module_of)

    def __len__(self) -> int:
        return len(self._module_of)

    def __contains__(self, name: object) -> bool:
        return name in self._module_of


class LazyGroup(TyperGroup):
    """The root group: its commands come from COMMAND_MODULES, imported on demand."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(COMMAND_MODULES)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"glmctl {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="glmctl",
    cls=LazyGroup,
    help="Serve GLM-4.5 from one topology file: size it, plan it, run it, watch it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
)
_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_version, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


def _debug() -> bool:
    """`--debug`, or GLMCTL_DEBUG set (read through settings.py)."""
    if _state["debug"] or "--debug" in sys.argv:
        return True
    try:
        from controlplane.settings import get_settings

        return get_settings().debug
    except (UserError, ImportError):
        return False


def _print_error(message: str, prefix: str = "[bold red]error:[/]") -> None:
    from rich.markup import escape

    from controlplane.cli.options import err_console

    err_console.print(f"{prefix} {escape(message)}", highlight=False, soft_wrap=True)


def _show_usage_error(exc: Exception) -> int | None:
    """Print a click/typer usage error the way click does; its exit code, or None."""
    # typer >= 0.29 vendors click (its exceptions derive from TyperException); older typer
    # uses click itself, which is then already imported: never import click here.
    click = sys.modules.get("click")
    kinds: tuple[type, ...] = (typer.TyperException,)
    if click is not None:
        kinds += (click.ClickException,)
    if isinstance(exc, kinds) and hasattr(exc, "show"):
        exc.show()
        return int(getattr(exc, "exit_code", 2))
    return None


def run() -> None:
    """Console-script entry: user errors print as one paragraph, exit code 2."""
    try:
        code = app(standalone_mode=False)  # a command's `typer.Exit(n)` returns n here
    except UserError as exc:
        if _debug():
            traceback.print_exc()
        _print_error(str(exc))
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _print_error("aborted", prefix="")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except ModuleNotFoundError as exc:  # a command of an extra that is not installed
        from controlplane.doctor.extras import missing_extra_message

        message = missing_extra_message(exc.name)
        if message is None or _debug():
            _internal_error(exc)
        _print_error(message or "")
        sys.exit(2)
    except Exception as exc:  # click usage errors and bugs
        usage = _show_usage_error(exc)
        if usage is not None:
            sys.exit(usage)
        _redis_error(exc)  # a Redis that is down is the user's to fix, not a bug
        _internal_error(exc)
    if isinstance(code, int) and code:
        sys.exit(code)


def _redis_error(exc: BaseException) -> None:
    """Exit 2 with one paragraph (no password: store/redis.py) when `exc` is a Redis
    connection or auth failure; return for anything else."""
    from controlplane.store.redis import uncaught_error

    error = uncaught_error(exc)
    if error is not None:
        if _debug():
            traceback.print_exc()
        _print_error(str(error))
        sys.exit(2)


def _internal_error(exc: BaseException) -> None:
    """A bug: its traceback under --debug, else one line; exit code 1."""
    if _debug():
        raise exc
    _print_error(
        f"{type(exc).__name__}: {exc} (run again with --debug for the traceback)",
        prefix="[bold red]internal error:[/]",
    )
    sys.exit(1)


if __name__ == "__main__":
    run()
