"""The install tier: the built wheel in fresh virtual environments, one per extra.

`python -m build` makes the wheel and the sdist once per session; each extra gets its own
`uv venv` with the wheel (never the checkout) installed, and every command runs from a
folder outside the repository, as a user's would.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTRAS = ("core", "serve", "ops", "loadtest", "k8s", "dev")  # core: no extra


def uv() -> list[str]:
    """The uv command: on PATH, else the `uv` package of the dev extra."""
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Installed:
    """One fresh venv holding the wheel with `extra`; `run` calls its `glmctl`."""

    extra: str
    venv: Path
    workdir: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "glmctl"), *argv],
            cwd=self.workdir, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The wheel and sdist of this checkout, built by `python -m build` (isolated, uv)."""
    out = tmp_path_factory.mktemp("dist")
    has_uv = shutil.which("uv") or importlib.util.find_spec("uv")
    installer = ["--installer", "uv"] if has_uv else []
    result = subprocess.run(
        [sys.executable, "-m", "build", *installer, "--outdir", str(out), str(REPO)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Dists(next(out.glob("glmctl-*.whl")), next(out.glob("glmctl-*.tar.gz")))


def _clean_env(home: Path) -> dict[str, str]:
    """The user's environment without this checkout or its venv; pyc files are written."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE", "RAY_ADDRESS"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("GLMCTL_")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))
    )
    env["GLMCTL_STATE_DIR"] = str(home / "state")
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(scope="session")
def install(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Installed]:
    """`install("serve")`: a venv with the wheel and that extra (made once per session)."""
    made: dict[str, Installed] = {}

    def make(extra: str) -> Installed:
        if extra not in made:
            root = tmp_path_factory.mktemp(f"venv-{extra}")
            venv, workdir = root / "venv", root / "work"
            workdir.mkdir()
            subprocess.run([*uv(), "venv", "-q", "--python", sys.executable, str(venv)],
                           check=True, timeout=120)  # fmt: skip
            target = str(dists.wheel) if extra == "core" else f"glmctl[{extra}] @ {dists.wheel}"
            result = subprocess.run(
                [*uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), target],
                capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr[-3000:]
            made[extra] = Installed(extra, venv, workdir, _clean_env(root))
        return made[extra]

    return make
