"""The embedded cluster heals itself: its Ray processes are killed (by their ids) under a
running deployment; `status` says so and restarts it, and the next `apply` serves again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TOPOLOGIES

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]
GLMCTL = str(Path(sys.executable).with_name("glmctl"))
TOPOLOGY = str(TOPOLOGIES / "glm45-fp8.yaml")
RAY_PROCESSES = ("gcs_server", "raylet")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    drop = ("RAY_ADDRESS", "GLMCTL_REDIS_URL")
    environment = {k: v for k, v in os.environ.items() if k not in drop}
    environment["GLMCTL_STATE_DIR"] = str(tmp_path / "state")
    yield environment
    subprocess.run([GLMCTL, "delete", "glm45-fp8"], env=environment, capture_output=True,
                   timeout=180, check=False)  # fmt: skip
    state = tmp_path / "state" / "embedded" / "state.json"
    if state.exists():  # the delete above stops the keeper; never leave one behind
        os.kill(json.loads(state.read_text())["pid"], signal.SIGTERM)


def _glmctl(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([GLMCTL, *argv], env=env, capture_output=True, text=True,
                            timeout=300, check=False)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _session_processes(session: int) -> dict[int, str]:
    """pid -> command name of every process in the keeper's session (Ray's, Redis, ...)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == session:
            found[int(stat.parent.name)] = name
    return found


def _chat(url: str) -> int:
    body = {
        "model": "glm-4.5-fp8",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
    }
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def _kill_ray(state_file: Path) -> dict[str, object]:
    """SIGKILL the cluster's GCS and raylets (by pid) under its live keeper; its state."""
    state: dict[str, object] = json.loads(state_file.read_text())
    keeper = int(str(state["pid"]))
    victims = {p: n for p, n in _session_processes(keeper).items() if n in RAY_PROCESSES}
    assert "gcs_server" in victims.values() and "raylet" in victims.values(), victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while set(victims) & set(_session_processes(keeper)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return state


def _served(env: dict[str, str]) -> None:
    listed = json.loads(_glmctl(env, "status", "-o", "json").stdout)
    (deployment,) = listed["deployments"]
    assert deployment["status"] == "RUNNING"
    assert _chat(str(deployment["endpoint"])) == 200


def test_killed_ray_processes_are_restarted_and_apply_serves_again(
    env: dict[str, str], tmp_path: Path
) -> None:
    state_file = tmp_path / "state" / "embedded" / "state.json"
    first = _glmctl(env, "apply", TOPOLOGY, "-y")
    assert first.returncode == 0, first.stderr
    state = _kill_ray(state_file)

    dry = _glmctl(env, "plan", TOPOLOGY)  # a dry run plans as if nothing ran, starts nothing
    assert dry.returncode == 0, dry.stderr
    assert json.loads(state_file.read_text())["pid"] == state["pid"]

    began = time.monotonic()
    second = _glmctl(env, "apply", TOPOLOGY, "-y")
    assert second.returncode == 0, second.stderr
    assert "embedded Ray cluster had died" in second.stdout
    assert "leave it unset" not in second.stdout + second.stderr  # the old misleading advice
    print(f"apply restarted the dead cluster and served again in {time.monotonic() - began:.1f} s")
    restarted = json.loads(state_file.read_text())
    assert restarted["pid"] != state["pid"] and restarted["address"] != state["address"]
    assert len(restarted["nodes"]) == len(state["nodes"])  # type: ignore[arg-type]
    _served(env)

    _kill_ray(state_file)
    began = time.monotonic()
    status = _glmctl(env, "status")
    assert status.returncode == 0, status.stderr
    assert "embedded Ray cluster had died" in status.stdout
    healed_in = time.monotonic() - began
    print(f"status found the dead cluster and restarted it in {healed_in:.1f} s")
    assert healed_in < 90
