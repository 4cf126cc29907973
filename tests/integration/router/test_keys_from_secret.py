"""API keys on Kubernetes: `glmctl keys create --k8s` prints a Secret, the router pods' init
container (`glmctl keys sync --from-dir`) copies its keys into Redis, and a real router
with `auth: api_keys` then serves a chat request with that key (real Redis, router
process and simulated engine). Removing the key from the Secret revokes it at the next sync."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from controlplane.local.redis_server import LocalRedis
from controlplane.router.keys import KeySpec, create_key, list_keys
from controlplane.spec import Topology
from tests.integration.router.conftest import Cluster
from tests.integration.router.helpers import chat_body

pytestmark = pytest.mark.integration
Factory = Callable[[LocalRedis, Topology], Cluster]
GLMCTL = [sys.executable, "-m", "controlplane.cli.main"]
NS = "glmctl"


def _glmctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GLMCTL, *args], capture_output=True, text=True, timeout=60)


def _mount(secret: dict[str, object], folder: Path) -> Path:
    """The Secret as kubelet mounts it: one file per key, plus its `..data` link."""
    folder.mkdir()
    for name, value in dict(secret["stringData"]).items():  # type: ignore[call-overload]
        (folder / name).write_text(str(value))
    (folder / "..data").symlink_to(folder)
    return folder


def _chat(url: str, model: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = chat_body(model, "hello", max_tokens=4)
    return httpx.post(
        url + "/v1/chat/completions", json=body, headers=headers, timeout=30
    ).status_code


def test_a_key_from_the_secret_opens_the_router(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory, tmp_path: Path
) -> None:
    printed = _glmctl("keys", "create", "demo", "--name", "alice", "--k8s")
    assert printed.returncode == 0, printed.stderr
    secret = yaml.safe_load(printed.stdout)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "demo-api-keys"
    key = secret["stringData"]["alice"]
    assert key.startswith("sk-glmctl-")
    # A key made the usual way stays through every sync.
    other = create_key(redis_server.url, NS, KeySpec(name="ops"))

    folder = _mount(secret, tmp_path / "api-keys")
    synced = _glmctl("keys", "sync", "demo", "--from-dir", str(folder),
                     "--redis-url", redis_server.url, "--namespace", NS)  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    assert "1 added, 0 revoked" in synced.stdout
    assert {k["name"] for k in list_keys(redis_server.url, NS)} == {"alice", "ops"}

    cluster = cluster_factory(redis_server, topo)
    cluster.engine("a")
    url = cluster.router("round_robin", workers=1, auth="api_keys")
    assert _chat(url, cluster.model, key) == 200
    assert _chat(url, cluster.model, None) == 401
    assert _chat(url, cluster.model, other) == 200

    (folder / "alice").unlink()
    resynced = _glmctl("keys", "sync", "demo", "--from-dir", str(folder),
                       "--redis-url", redis_server.url, "--namespace", NS)  # fmt: skip
    assert "0 added, 1 revoked" in resynced.stdout, resynced.stderr
    time.sleep(1.0)  # routers refresh keys every 0.1 s
    assert _chat(url, cluster.model, key) == 401
    assert _chat(url, cluster.model, other) == 200


def test_k8s_key_names_must_be_secret_keys() -> None:
    refused = _glmctl("keys", "create", "demo", "--name", "alice smith", "--k8s")
    assert refused.returncode != 0
    assert "cannot be a Secret key" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
