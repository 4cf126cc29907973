"""Launch wrappers: the argv that runs an engine from glmctl's cached venv (pure).

A plan's command starts `<python> -m controlplane.engines.venv --engine E --version V
[--local-model M] -- <engine argv>`; that launcher (engines/venv.py, with the recipe from the
engine's profile) builds the venv on first use (local/venv.py) and execs the engine. This
module only writes and splits that argv, so a command builder can use it without importing
an installer.
"""

from __future__ import annotations

LAUNCH_MODULE = "controlplane.engines.venv"  # written into plans and renders: keep the path
MODEL_FLAGS = ("--model", "--model-path")
# Catalog models glmctl generates itself instead of downloading (local/tiny_model.py).
TINY_MODEL_NAME = "glm-4.5-tiny"


def is_local_model(name: str) -> bool:
    """True for catalog models glmctl generates itself (never downloaded)."""
    return name == TINY_MODEL_NAME


def launch_prefix(
    python: str, engine: str, version: str, local_model: str | None = None
) -> list[str]:
    """argv to put before an engine command so it runs from glmctl's cached venv.

    `<python> -m controlplane.engines.venv --engine vllm --version V [--local-model NAME] --`
    then the engine's own `python -m ...` argv. `python` is the placeholder the worker fills
    with glmctl's interpreter; the launcher builds the venv on first use, swaps `python` for
    the venv's, points `--model` at a locally generated checkpoint when `local_model` names
    one, and execs the engine (same pid, so the worker's process handling is unchanged).
    """
    argv = [python, "-m", LAUNCH_MODULE, "--engine", engine, "--version", version]
    if local_model:
        argv += ["--local-model", local_model]
    return [*argv, "--"]


def split_launch(argv: list[str]) -> tuple[list[str], list[str]]:
    """(launcher part, engine part) of an argv; no launcher: ([], argv)."""
    if len(argv) > 2 and argv[1:3] == ["-m", LAUNCH_MODULE] and "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return [], argv
