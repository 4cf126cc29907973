"""No Redis password in any error: every CLI command that talks to Redis, run against a
real password-protected redis-server that was then stopped, prints an error that names the
redacted URL and never the password, whether the password came in the URL or through
GLMCTL_REDIS_PASSWORD."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.local.redis_server import LocalRedis
from controlplane.local.secrets import url_password, without_password
from tests.conftest import REPO

pytestmark = pytest.mark.integration
GLMCTL = str(Path(sys.executable).with_name("glmctl"))

# Every command that opens a Redis connection from the CLI process without joining Ray
# first (those that do, `status`, `scale`, `delete`, ...: test_redis_down_cluster.py).
KEY_DIR = "KEY_DIR"  # an empty folder: the mounted Secret of `keys sync`
COMMANDS = (
    ("router", "endpoints"),
    ("router", "register", "e1", "http://127.0.0.1:9", "--model", "m"),
    ("router", "deregister", "e1"),
    ("router", "add-key", "alice"),
    ("keys", "create", "dep", "--name", "alice"),
    ("keys", "list", "dep"),
    ("keys", "revoke", "dep", "alice"),
    ("keys", "sync", "dep", "--from-dir", KEY_DIR),
    ("top", "--once", "--address", "127.0.0.1:1", "--prometheus", ""),
)


@pytest.fixture(scope="module")
def stopped_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(URL with password, password) of a redis-server that ran with that password and is
    stopped now."""
    folder = tmp_path_factory.mktemp("redis")
    server = LocalRedis.start(password_file=folder / "password")
    url, password = server.url, url_password(server.url)
    assert password
    try:
        ok = _glmctl(folder, {}, "router", "endpoints", "--redis-url", url)
        assert ok.returncode == 0, ok.stdout + ok.stderr  # the password is the right one
    finally:
        server.stop()
    yield url, password


def _glmctl(state: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GLMCTL_")}
    environment.update(GLMCTL_STATE_DIR=str(state), COLUMNS="200", **env)
    return subprocess.run([GLMCTL, *args], env=environment, cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def _in(folder: Path, command: tuple[str, ...]) -> tuple[str, ...]:
    """`command` with KEY_DIR as an empty folder under `folder`."""
    keys = folder / "secret-keys"
    keys.mkdir(exist_ok=True)
    return tuple(str(keys) if arg == KEY_DIR else arg for arg in command)


def _check(done: subprocess.CompletedProcess[str], password: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert password not in output, output
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_password_in_the_url(
    stopped_redis: tuple[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    url, password = stopped_redis
    command = _in(tmp_path, command)
    if command[0] == "top":  # reads GLMCTL_REDIS_URL (no --redis-url option)
        done = _glmctl(tmp_path, {"GLMCTL_REDIS_URL": url}, *command)
    else:
        done = _glmctl(tmp_path, {}, *command, "--redis-url", url)
    _check(done, password)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_password_from_the_environment(
    stopped_redis: tuple[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    url, password = stopped_redis
    env = {"GLMCTL_REDIS_URL": without_password(url), "GLMCTL_REDIS_PASSWORD": password}
    _check(_glmctl(tmp_path, env, *_in(tmp_path, command)), password)


def test_router_logs_hold_no_password(stopped_redis: tuple[str, str], tmp_path: Path) -> None:
    """A router whose Redis is down serves from its local view; what it logs while trying
    Redis (startup, request path, background refresh) never holds the password."""
    import httpx

    from controlplane.router.server import RouterProcesses

    url, password = stopped_redis
    log = tmp_path / "router.log"
    try:
        router = RouterProcesses.start(url, workers=1, policy="round_robin", log_file=str(log))
    except Exception as exc:  # refusing to start is fine; saying the password is not
        assert password not in str(exc)
    else:
        try:
            body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
            for _ in range(3):
                httpx.post(router.url + "/v1/chat/completions", json=body, timeout=10)
            httpx.get(router.url + "/metrics", timeout=10)
        finally:
            router.stop()
    text = log.read_text() if log.exists() else ""
    assert password not in text, text
