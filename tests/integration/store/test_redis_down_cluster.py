"""No Redis password in any error, for the commands that reach Ray before Redis: `status`,
`scale`, `delete`, `plan`, `apply`, `demo`, `loadtest NAME` and `top` (and `keys`, which
read the embedded cluster's state) against a real Ray cluster whose Redis is down.

The cluster is glmctl's own embedded one (the keeper, as `apply` starts it) given an
external password-protected redis-server, which the fixture then stops: the Ray side
answers, the Redis side does not. The password reaches the commands each way glmctl
takes one: in the embedded cluster's state file (the keeper got it from the environment),
in GLMCTL_REDIS_URL, and in GLMCTL_REDIS_PASSWORD beside a password-free URL (these two
with `--address`). Each command must fail with a one-paragraph error that says Redis is
unreachable, exit 2 (a user error, not a traceback's 1), and never show the password.
`tests/integration/store/test_redis_down.py` covers the commands that need no Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from controlplane.backends.ray.cluster import embedded_dir, embedded_state, stop_embedded
from controlplane.backends.ray.keeper import NodeSpec
from controlplane.backends.ray.loopback import ray_environment
from controlplane.local.redis_server import LocalRedis
from controlplane.local.secrets import url_password, without_password
from tests.conftest import REPO, TOPOLOGIES

# One cluster start (about 10 s) and 29 CLI runs, most of which join Ray as a driver.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
GLMCTL = str(Path(sys.executable).with_name("glmctl"))
TOPOLOGY = str(TOPOLOGIES / "glm45-air-fp8-h200x1.yaml")
GHOST = "ghost"  # a deployment name: Redis is read before anything says it does not run

# Every command that joins the Ray cluster and then reads or writes Redis.
ON_RAY = (
    ("status",),
    ("status", "-o", "json"),
    ("scale", GHOST, "--replicas", "2"),
    ("delete", GHOST),
    ("plan", TOPOLOGY),
    ("apply", TOPOLOGY, "-y"),
    ("demo", TOPOLOGY),
    ("loadtest", GHOST, "--duration", "1s"),
)
# Commands that find Redis through the embedded cluster's state file (no --redis-url).
FROM_STATE = (
    ("top", "--once", "--prometheus", ""),
    ("keys", "create", GHOST, "--name", "alice"),
    ("keys", "list", GHOST),
    ("keys", "revoke", GHOST, "alice"),
    ("keys", "sync", GHOST, "--from-dir", "KEY_DIR"),  # an empty mounted Secret
)


class Cluster:
    """The embedded cluster's state dir, its GCS address, and the stopped Redis's URL."""

    def __init__(self, state: Path, address: str, url: str) -> None:
        self.state, self.address, self.url = state, address, url
        password = url_password(url)
        assert password
        self.password = password


def _environment(state: Path, env: dict[str, str]) -> dict[str, str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("GLMCTL_", "RAY_ADDRESS"))
    }
    environment.update(GLMCTL_STATE_DIR=str(state), COLUMNS="200", **env)
    return environment


def _glmctl(state: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GLMCTL, *args], env=_environment(state, env), cwd=REPO,
                          capture_output=True, text=True, timeout=180, check=False)  # fmt: skip


def _start_keeper(state: Path, url: str) -> subprocess.Popen[bytes]:
    """The keeper as `cluster.start_embedded` starts it: the URL on its command line without
    the password, which goes by environment (here, from a process that never imports Ray)."""
    node = NodeSpec(gpu_type=None, gpus=0, cpus=1, memory_gib=4)
    folder = embedded_dir(state)
    folder.mkdir(parents=True)
    argv = [sys.executable, "-m", "controlplane.backends.ray.keeper", "--state-dir", str(folder)]
    argv += ["--nodes", json.dumps([node.model_dump()]), "--redis-url", without_password(url)]
    env = _environment(
        state, {**ray_environment(), "GLMCTL_REDIS_PASSWORD": url_password(url) or ""}
    )
    log = (state / "keeper.log").open("ab")
    with log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("state")
    redis = LocalRedis.start(password_file=state / "redis.password")
    keeper = _start_keeper(state, redis.url)
    try:
        deadline = time.monotonic() + 120
        while embedded_state(state) is None:
            assert keeper.poll() is None, (state / "keeper.log").read_text()
            assert time.monotonic() < deadline, "the embedded cluster did not start in 120 s"
            time.sleep(0.2)
        found = embedded_state(state)
        assert found is not None and found.redis_url == redis.url  # the password, by file
        ok = _glmctl(state, {}, "status", "-o", "json")
        assert ok.returncode == 0, ok.stdout + ok.stderr  # Ray and the password are right
        assert json.loads(ok.stdout)["deployments"] == []
        redis.stop()
        yield Cluster(state, found.address, redis.url)
    finally:
        redis.stop()
        stop_embedded(state)
        if keeper.poll() is None:
            keeper.kill()
            keeper.wait()


WAYS = ("state file", "url", "environment")


def _way(cluster: Cluster, way: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """(environment, extra arguments) that give the commands the password `way`."""
    if way == "state file":
        return {}, ()
    if way == "url":
        return {"GLMCTL_REDIS_URL": cluster.url}, ("--address", cluster.address)
    env = {
        "GLMCTL_REDIS_URL": without_password(cluster.url),
        "GLMCTL_REDIS_PASSWORD": cluster.password,
    }
    return env, ("--address", cluster.address)


CASES = [(way, c) for way in WAYS for c in (ON_RAY + FROM_STATE if way == "state file" else ON_RAY)]


@pytest.fixture(scope="module")
def outputs(
    cluster: Cluster,
) -> dict[tuple[str, tuple[str, ...]], subprocess.CompletedProcess[str]]:
    """Every case's run, four at a time: each CLI run spends most of its seconds waiting on
    Ray's driver start, so running them side by side cuts the module's time about threefold."""

    key_dir = cluster.state / "secret-keys"
    key_dir.mkdir()

    def run(case: tuple[str, tuple[str, ...]]) -> subprocess.CompletedProcess[str]:
        env, extra = _way(cluster, case[0])
        command = [str(key_dir) if arg == "KEY_DIR" else arg for arg in case[1]]
        return _glmctl(cluster.state, env, *command, *extra)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(CASES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[0]}: {' '.join(case[1][:2])}")
def test_redis_down_says_so_without_the_password(
    cluster: Cluster,
    outputs: dict[tuple[str, tuple[str, ...]], subprocess.CompletedProcess[str]],
    case: tuple[str, tuple[str, ...]],
) -> None:
    done = outputs[case]
    output = done.stdout + done.stderr
    assert cluster.password not in output, output
    assert "Traceback" not in output, output
    assert "cannot reach Redis" in output, output
    assert done.returncode == 2, output  # a user error (an internal error exits 1)
