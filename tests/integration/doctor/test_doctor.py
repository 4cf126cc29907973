"""`glmctl doctor` on this machine in three states: all present, redis-server missing from
PATH, and too little memory declared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TOPOLOGIES

pytestmark = pytest.mark.integration
GLMCTL = str(Path(sys.executable).with_name("glmctl"))
TOPOLOGY = str(TOPOLOGIES / "glm45-fp8.yaml")


def _doctor(tmp_path: Path, *argv: str, path: str | None = None) -> tuple[int, dict[str, dict]]:
    env = {k: v for k, v in os.environ.items() if k not in ("GLMCTL_REDIS_URL", "RAY_ADDRESS")}
    env["GLMCTL_STATE_DIR"] = str(tmp_path / "state")
    if path is not None:
        env["PATH"] = path
    result = subprocess.run([GLMCTL, "doctor", TOPOLOGY, "-o", "json", *argv], env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, {c["check"]: c for c in json.loads(result.stdout)}


def test_all_present_passes(tmp_path: Path) -> None:
    code, checks = _doctor(tmp_path)
    failed = {name: c for name, c in checks.items() if c["status"] == "fail"}
    assert code == 0 and failed == {}, failed
    assert checks["redis-server"]["detail"].startswith("Redis server v=")
    assert checks["extra serve"]["status"] == "ok"
    assert "glm45-fp8" in checks["memory"]["detail"]


def test_redis_server_missing_fails_with_the_install_fix(
    tmp_path: Path, path_without: Callable[[str], str]
) -> None:
    code, checks = _doctor(tmp_path, path=path_without("redis-server"))
    assert code == 1
    assert checks["redis-server"]["status"] == "fail"
    assert "apt-get install redis-server" in checks["redis-server"]["fix"]
    assert checks["memory"]["status"] == "ok"


def test_too_little_memory_declared_fails_with_what_the_topology_needs(tmp_path: Path) -> None:
    code, checks = _doctor(tmp_path, "--memory-gib", "0.5")
    assert code == 1
    memory = checks["memory"]
    assert memory["status"] == "fail"
    assert memory["detail"].startswith("0.5 GiB available; glm45-fp8")
    assert "replicas.max" in memory["fix"]
    assert checks["redis-server"]["status"] == "ok"


def test_text_output_is_one_line_per_check(tmp_path: Path) -> None:
    env = dict(os.environ, GLMCTL_STATE_DIR=str(tmp_path / "state"))
    result = subprocess.run([GLMCTL, "doctor", "--memory-gib", "0.1", TOPOLOGY], env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("FAIL memory") and "To fix:" in line for line in lines)
    assert lines[-1].startswith("1 problem(s) stop `glmctl apply`: memory")


def test_an_address_where_nothing_answers_fails_at_once(tmp_path: Path) -> None:
    from controlplane.local.ports import free_port

    address = f"127.0.0.1:{free_port()}"
    code, checks = _doctor(tmp_path, "--address", address)
    assert code == 1
    assert checks["cluster"]["status"] == "fail"
    assert f"nothing answers at {address}" in checks["cluster"]["detail"]
