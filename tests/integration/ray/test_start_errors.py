"""The embedded cluster's start-up failures reach the user with their first cause and fix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TOPOLOGIES

pytestmark = pytest.mark.integration
GLMCTL = str(Path(sys.executable).with_name("glmctl"))


def _apply(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    result = subprocess.run(
        [GLMCTL, "apply", str(TOPOLOGIES / "glm45-fp8.yaml"), "-y"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    return result, time.monotonic() - began


def _env(state_dir: Path, **extra: str) -> dict[str, str]:
    drop = ("RAY_ADDRESS", "GLMCTL_REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {"GLMCTL_STATE_DIR": str(state_dir)} | extra


def test_apply_without_redis_server_says_so_at_once(
    tmp_path: Path, path_without: Callable[[str], str]
) -> None:
    state = tmp_path / "state"
    result, seconds = _apply(_env(state, PATH=path_without("redis-server")))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "redis-server is not installed" in result.stderr
    assert "apt-get install redis-server" in result.stderr
    assert "did not start in" not in result.stderr  # the old 120 s time-out message
    assert seconds < 60, f"took {seconds:.0f} s"
    assert not (state / "embedded" / "state.json").exists()


def test_apply_with_an_unwritable_state_dir_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the state dir's parent should be")
    result, _ = _apply(_env(blocker / "state"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "is not writable" in result.stderr and "GLMCTL_STATE_DIR" in result.stderr
