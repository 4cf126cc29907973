"""Shell completion (typer's, bash protocol): commands, options, topology files, deployments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.local.redis_server import LocalRedis
from tests.conftest import REPO

pytestmark = pytest.mark.integration
GLMCTL = str(Path(sys.executable).with_name("glmctl"))


def _complete(words: str, **env: str) -> list[str]:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    environment = dict(os.environ, _GLMCTL_COMPLETE="complete_bash", COMP_WORDS=words,
                       COMP_CWORD=str(cword), **env)  # fmt: skip
    result = subprocess.run([GLMCTL], env=environment, cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_commands_and_sub_commands() -> None:
    assert sorted(_complete("glmctl ca")) == ["calibrate", "capacity"]
    assert _complete("glmctl cap") == ["capacity"]
    assert "doctor" in _complete("glmctl ")
    assert _complete("glmctl sim s") == ["serve"]


def test_options() -> None:
    assert _complete("glmctl capacity --pre") == ["--precision"]
    assert "--install-completion" in _complete("glmctl --")


def test_topology_files() -> None:
    found = _complete("glmctl validate topologies/glm45-air-fp8-h")
    assert found == sorted(str(p.relative_to(REPO)) for p in
                           (REPO / "topologies").glob("glm45-air-fp8-h*.yaml"))  # fmt: skip
    assert "topologies/" in _complete("glmctl apply top")


def test_deployment_names_come_from_redis(redis_server: LocalRedis, tmp_path: Path) -> None:
    import redis

    from controlplane.backends.ray.records import DEPLOYMENTS

    client = redis.Redis.from_url(redis_server.url)
    client.sadd(DEPLOYMENTS, "glm45-fp8", "glm45-air", "other")
    client.close()
    env = {"GLMCTL_REDIS_URL": redis_server.url, "GLMCTL_STATE_DIR": str(tmp_path)}
    assert _complete("glmctl delete glm45", **env) == ["glm45-air", "glm45-fp8"]
    assert _complete("glmctl scale o", **env) == ["other"]
    assert _complete("glmctl delete g", GLMCTL_STATE_DIR=str(tmp_path)) == []  # nothing runs
