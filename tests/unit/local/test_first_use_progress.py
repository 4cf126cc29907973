"""Long first-time work says what it does and how long it should take (issue 24): the engine
venv build and the tiny checkpoint write report a start line with an estimate, each step with
the elapsed time, and the total."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controlplane.local import venv as venv_mod
from controlplane.local.tiny_model import TINY_WRITE_ESTIMATE, ensure_tiny_model


def test_venv_build_reports_an_estimate_and_elapsed_steps(tmp_path: Path) -> None:
    # A recipe with no installs: the real build steps (venv, import check) run, offline.
    recipe = venv_mod.VenvRecipe(name="probe-0", installs=(), check_import="json")
    lines: list[str] = []
    built = venv_mod.ensure_venv(recipe, tmp_path, progress=lines.append)
    assert built.python.exists()
    assert lines[0].startswith("probe-0: first use") and venv_mod.FIRST_BUILD_ESTIMATE in lines[0]
    steps = lines[1:-1]
    assert steps and all(re.match(r"\[\s*\d+ s\] probe-0: ", line) for line in steps), steps
    assert re.fullmatch(r"probe-0: ready in \d+ s", lines[-1])
    again: list[str] = []
    venv_mod.ensure_venv(recipe, tmp_path, progress=again.append)
    assert again == []  # built once: nothing to report


def test_tiny_checkpoint_write_reports_start_and_duration(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("tokenizers")
    lines: list[str] = []
    folder = ensure_tiny_model(cache_dir=tmp_path, progress=lines.append)
    assert (folder / "config.json").exists()
    assert lines[0] == f"writing the tiny checkpoint to {folder} (first use; {TINY_WRITE_ESTIMATE})"
    assert re.fullmatch(r"tiny checkpoint written in \d+ s", lines[1])
    ensure_tiny_model(cache_dir=tmp_path, progress=lines.append)
    assert len(lines) == 2  # cached: silent
