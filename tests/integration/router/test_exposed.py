"""Secure default off loopback: a router bound to a network namespace's own address (not
loopback, reachable by other "machines" on that network) refuses to start without keys,
starts once a key exists and then answers 401 without it.

The namespace holds its own Redis (on the namespace's loopback) and a veth pair with a
private address; every process runs inside it, so no traffic leaves it
(../shared/reference/ray-on-one-machine.md). Needs root and `ip`; skipped otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controlplane.local.secrets import generate_password, write_secret

pytestmark = pytest.mark.integration
PYTHON = sys.executable
GLMCTL = str(Path(sys.executable).with_name("glmctl"))


@dataclass
class Lab:
    name: str
    address: str
    redis_url: str  # without the password (it goes by GLMCTL_REDIS_PASSWORD)
    env: dict[str, str]

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True, text=True, timeout=timeout, env=self.env,
        )  # fmt: skip

    def start(self, *argv: str, quiet: bool = False) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name, *argv],
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL if quiet else None,
        )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("redis-server") is None:
        pytest.skip("needs root, iproute2 and redis-server for a network namespace")
    name = f"glmctl-sec-{os.getpid()}"
    address = f"10.79.{os.getpid() % 250 + 1}.1"
    folder = tmp_path_factory.mktemp("lab")
    password = generate_password()
    conf = write_secret(folder / "redis.conf", f"requirepass {password}\n")
    redis: subprocess.Popen[bytes] | None = None
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "v0")
        _ip("-n", name, "link", "set", "v1", "up")
        _ip("-n", name, "link", "set", "v0", "up")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GLMCTL_")}
        env |= {"GLMCTL_REDIS_PASSWORD": password, "GLMCTL_STATE_DIR": str(folder / "state")}
        found = Lab(name, address, "redis://127.0.0.1:6379/0", env)
        redis = found.start(
            "redis-server", str(conf), "--bind", "127.0.0.1", "--save", "", quiet=True
        )
        deadline = time.monotonic() + 10
        while found.run("redis-cli", "-a", password, "ping").stdout.strip() != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start in the namespace"
            time.sleep(0.1)
        yield found
    finally:
        if redis is not None:
            _stop(redis)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def router_argv(lab: Lab, *extra: str) -> list[str]:
    where = ["--host", lab.address, "--port", "8000", "--namespace", "glmctl-exposed"]
    return [PYTHON, "-m", "controlplane.router", "--redis-url", lab.redis_url, *where, *extra]


def status_of(lab: Lab, headers: str = "{}") -> str:
    code = (
        "import urllib.request, urllib.error\n"
        f"req = urllib.request.Request('http://{lab.address}:8000/v1/models', headers={headers})\n"
        "try:\n    print(urllib.request.urlopen(req, timeout=2).status)\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)\n"
        "except OSError as e:\n    print('down')\n"
    )
    return lab.run(PYTHON, "-c", code).stdout.strip()


def test_exposed_router_refuses_to_start_without_keys_then_requires_them(lab: Lab) -> None:
    refused = lab.run(*router_argv(lab))
    assert refused.returncode == 2
    assert "no API key exists" in refused.stderr and "To fix:" in refused.stderr
    assert "glmctl keys create" in refused.stderr
    created = lab.run(GLMCTL, "keys", "create", "exposed", "--name", "ops",
                      "--redis-url", lab.redis_url)  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    router = lab.start(*router_argv(lab))
    try:
        deadline = time.monotonic() + 30
        while (code := status_of(lab)) == "down":
            assert router.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert code == "401"
        assert status_of(lab, f"{{'Authorization': 'Bearer {secret}'}}") == "200"
    finally:
        _stop(router)


def test_explicit_auth_none_starts_open(lab: Lab) -> None:
    router = lab.start(*router_argv(lab, "--auth", "none", "--namespace", "glmctl-open"))
    try:
        deadline = time.monotonic() + 30
        while (code := status_of(lab)) == "down":
            assert router.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert code == "200"
    finally:
        _stop(router)
