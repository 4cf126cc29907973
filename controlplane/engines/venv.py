"""`python -m controlplane.engines.venv`: run an engine from its cached venv (the launcher).

Plans and committed renders write this module path into launch commands
(`local/launch.py` `LAUNCH_MODULE`), so it stays here: it looks the engine's venv recipe up
in its profile and hands over to local provisioning (`controlplane/local/venv.py`), which
builds the venv, makes the local model and execs the engine. The names below are
re-exported for code that imported them from here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from controlplane.engines.registry import PROFILES, profile_for
from controlplane.errors import UserError
from controlplane.local.launch import LAUNCH_MODULE, MODEL_FLAGS, launch_prefix, split_launch
from controlplane.local.venv import (
    EngineVenv,
    VenvRecipe,
    engine_argv,
    ensure_venv,
    ready_venv,
    run_launcher,
    venv_root,
)
from controlplane.spec.models import EngineKind

__all__ = [
    "LAUNCH_MODULE",
    "MODEL_FLAGS",
    "EngineVenv",
    "VenvRecipe",
    "engine_argv",
    "ensure_engine_venv",
    "launch_prefix",
    "main",
    "ready_venv",
    "recipe_for",
    "split_launch",
    "venv_root",
]


def recipe_for(kind: EngineKind | str, version: str) -> VenvRecipe:
    """The venv recipe of an engine at a version (its profile's); UserError when the engine
    has none (it runs in glmctl's own environment or its image)."""
    profile = profile_for(kind)
    if profile.venv is None:
        with_venv = " or ".join(f"`{name}`" for name in engines_with_venv())
        raise UserError(
            f"engine `{profile.name}` runs in glmctl's own environment or its image;"
            " it has no engine venv.",
            fix=f"ask for the venv of {with_venv}.",
        )
    return profile.venv(version)


def engines_with_venv() -> tuple[str, ...]:
    """The engines glmctl builds a venv for."""
    return tuple(p.name for p in PROFILES if p.venv is not None)


def ensure_engine_venv(
    kind: EngineKind | str,
    version: str,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> EngineVenv:
    """The engine's venv, built on first use (minutes); raises UserError if pip fails."""
    return ensure_venv(recipe_for(kind, version), cache_dir, progress)


def main(argv: list[str] | None = None) -> int:
    """`python -m controlplane.engines.venv --engine K --version V [--local-model M] -- CMD`."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args_in:
        print("usage: ... --engine vllm --version V [--local-model NAME] -- python -m ...")
        return 2
    cut = args_in.index("--")
    parser = argparse.ArgumentParser(prog=f"python -m {LAUNCH_MODULE}")
    parser.add_argument("--engine", type=EngineKind, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--local-model", default=None)
    opts = parser.parse_args(args_in[:cut])
    try:
        recipe = recipe_for(opts.engine, opts.version)
    except UserError as exc:
        print(f"[glmctl] {exc}", file=sys.stderr, flush=True)
        return 2
    return run_launcher(recipe, args_in[cut + 1 :], opts.local_model)


if __name__ == "__main__":
    sys.exit(main())
