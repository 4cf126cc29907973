"""A three-host Ray cluster plus a client host, in network namespaces (see lab.py).

head 10.77.0.1 (Ray head, Redis), gpu1 10.77.0.2 and gpu2 10.77.0.3 (8 declared H100
each, declared host RAM), client 10.77.0.4 (runs glmctl; not a cluster node). The GPU
hosts declare their RAM with glmctl's `host_memory_gib` resource, which marks the GPUs as
declared, so engines run as the simulator.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.multihost.lab import Lab, netns_supported

REDIS_PORT = 6380
GPUS_PER_HOST = 8
HOST_MEMORY_GIB = 2048  # an 8 x H100 server (planner.inventory.DECLARED_NODE_MEMORY_GIB)
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Cluster:
    lab: Lab
    address: str  # what the client passes to --address (Ray Client: not a cluster node)
    redis_url: str
    state_dir: Path

    def glmctl(
        self, *args: str, timeout: float = 300, redis: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `glmctl ARGS` on the client host (`redis=False`: without GLMCTL_REDIS_URL)."""
        env = {
            **({"GLMCTL_REDIS_URL": self.redis_url} if redis else {}),
            "GLMCTL_STATE_DIR": str(self.state_dir),
            "RAY_ADDRESS": self.address,
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **self.lab.ray_env("client"),
        }
        argv = [str(Path(sys.executable).parent / "glmctl"), *args]
        return self.lab.run("client", argv, env, timeout=timeout)

    def status(self) -> dict[str, object]:
        done = self.glmctl("status", "-o", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        data: dict[str, object] = json.loads(done.stdout)
        return data

    def api_key(self, deployment: str) -> str:
        """A new API key of `deployment` (created before apply: a router bound to a cluster
        address refuses to start without one)."""
        done = self.glmctl("keys", "create", deployment, "--name", "multihost-test")
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.splitlines()[0].strip()

    def chat(self, url: str, model: str, key: str = "") -> subprocess.CompletedProcess[str]:
        """One chat request from the client host; prints status, endpoint header, body."""
        code = (
            "import json, sys, urllib.request\n"
            "body = json.dumps({'model': sys.argv[2], 'max_tokens': 8,"
            " 'messages': [{'role': 'user', 'content': 'hi'}]}).encode()\n"
            "headers = {'content-type': 'application/json'}\n"
            "if sys.argv[3]:\n"
            "    headers['authorization'] = 'Bearer ' + sys.argv[3]\n"
            "url = sys.argv[1] + '/v1/chat/completions'\n"
            "request = urllib.request.Request(url, body, headers)\n"
            "with urllib.request.urlopen(request, timeout=30) as r:\n"
            "    print(r.status, r.headers.get('x-glmctl-endpoint'), r.read().decode())\n"
        )
        argv = [sys.executable, "-c", code, url, model, key]
        return self.lab.run("client", argv, timeout=60)


@pytest.fixture(scope="package")
def namespace_cluster() -> Iterator[Cluster]:
    why = netns_supported()
    if why:
        pytest.skip(f"no network namespaces here: {why}")
    lab = Lab(Path(tempfile.mkdtemp(prefix="gl-")))
    redis: subprocess.Popen[bytes] | None = None
    try:
        lab.start_bridge()
        for host in ("head", "gpu1", "gpu2", "client"):
            lab.add_host(host)
        head = lab.hosts["head"].address
        argv = ["redis-server", "--bind", head, "--port", str(REDIS_PORT), "--save", ""]
        argv += ["--appendonly", "no", "--protected-mode", "no", "--dir", str(lab.workdir)]
        redis = subprocess.Popen(
            lab.command("head", argv),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        lab.ray_start("head", None, gpus=0, resources={}, cpus=1)
        declared = {"accelerator_type:H100": 1, "host_memory_gib": HOST_MEMORY_GIB}
        for host in ("gpu1", "gpu2"):
            lab.ray_start(host, "head", gpus=GPUS_PER_HOST, resources=declared, cpus=4)
        yield Cluster(
            lab,
            address=f"ray://{head}:10001",
            redis_url=f"redis://{head}:{REDIS_PORT}/0",
            state_dir=lab.workdir / "client-state",
        )
    finally:
        lab.close()
        if redis is not None:
            redis.wait(timeout=10)  # ended by close(); reap it
        assert lab.leftovers() == [], "namespaces left behind"
