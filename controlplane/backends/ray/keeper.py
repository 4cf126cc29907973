"""The embedded cluster's keeper: one long-lived process that owns Ray and Redis.

`python -m controlplane.backends.ray.keeper --state-dir DIR --nodes JSON` builds a
multi-raylet Ray cluster with `ray.cluster_utils.Cluster` (one raylet per simulated node,
each on 127.0.0.1 with its declared GPUs, `accelerator_type:<GPU>` resource, declared host
RAM and labels), starts a private redis-server, writes `DIR/state.json`, then serves node
requests: a file `DIR/requests/<id>.json` listing nodes is answered by adding them and
writing `<id>.done`. SIGTERM shuts Serve down gracefully (replicas stop their engines and
routers), then the cluster and Redis. `glmctl apply` starts it; `status/scale/delete` find it
through `state.json`. While it runs it restarts its Redis and replaces lost nodes
(keeper_heal.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from controlplane.backends.ray import keeper_heal
from controlplane.backends.ray.loopback import LOOPBACK, apply_environment, ray_environment
from controlplane.errors import UserError
from controlplane.local.secrets import write_secret

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # per raylet; Ray's minimum is about 75 MiB
POLL_S = 0.1
SERVE_STOPPED = "serve-stopped"  # marker: the CLI already shut Serve down
SERVE_SHUTDOWN_S = 15.0  # replicas drain and stop their engines and routers
FAILED = "failed.json"  # why the keeper could not start: read by the waiting CLI
REDIS_PASSWORD_FILE = "redis.password"  # the private Redis's password (0600)


class NodeSpec(BaseModel):
    """One simulated node of the embedded cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_type: str | None
    gpus: int
    cpus: float
    memory_gib: int
    labels: dict[str, str] = {}

    def ray_args(self) -> dict[str, Any]:
        from controlplane.planner.inventory import DECLARED_MEMORY, accelerator_resource

        resources: dict[str, float] = {DECLARED_MEMORY: float(self.memory_gib)}
        if self.gpu_type:
            resources[accelerator_resource(self.gpu_type)] = 1.0
        return {
            "node_ip_address": LOOPBACK,
            "num_cpus": self.cpus,
            "num_gpus": self.gpus,
            "resources": resources,
            "labels": dict(self.labels),
            "object_store_memory": OBJECT_STORE_BYTES,
        }


class KeeperState(BaseModel):
    """What `state.json` records for later glmctl commands."""

    pid: int
    address: str
    redis_url: str
    tmpdir: str
    nodes: list[NodeSpec]
    started_at: float
    redis_pid: int | None = None  # the private redis-server (None: an external Redis)
    raylet_pids: list[int] = []  # the worker nodes' raylets, which this keeper started


def gcs_reachable(address: str, timeout: float = 2.0) -> bool:
    """True when the GCS at `host:port` accepts a TCP connection (the cluster is up)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or LOOPBACK, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def write_json(path: Path, data: Any) -> None:
    """Write atomically (readers never see half a file)."""
    write_secret(path, json.dumps(data, indent=1))  # owner-only: state.json has a password


class Keeper:
    def __init__(self, state_dir: Path, nodes: list[NodeSpec], redis_url: str | None) -> None:
        self.state_dir = state_dir
        self.nodes = list(nodes)
        self.redis_url = redis_url
        self.stopping = False
        self.tmpdir = Path(tempfile.mkdtemp(prefix="glmctl-ray-", dir="/tmp"))
        self.redis: Any = None
        self.cluster: Any = None
        self.specs: dict[Any, NodeSpec] = {}  # worker node (ray Node) -> its shape
        self.durable = keeper_heal.DurableKeys()

    def start(self) -> None:
        apply_environment(ray_environment(self.tmpdir))
        if self.redis_url is None:  # first: a missing redis-server fails in milliseconds
            from controlplane.local.redis_server import LocalRedis

            self.redis = LocalRedis.start(password_file=self.state_dir / REDIS_PASSWORD_FILE)
            self.redis_url = self.redis.url
        from ray.cluster_utils import Cluster

        head = self.nodes[0].ray_args() | {"include_dashboard": False}
        self.cluster = Cluster(initialize_head=True, head_node_args=head)
        for node in self.nodes[1:]:
            self.specs[self.cluster.add_node(wait=False, **node.ray_args())] = node
        self.cluster.wait_for_nodes()
        self.write_state()

    def write_state(self) -> None:
        assert self.redis_url is not None
        state = KeeperState(
            pid=os.getpid(),
            address=self.cluster.address,
            redis_url=self.redis_url,
            tmpdir=str(self.tmpdir),
            nodes=self.nodes,
            started_at=time.time(),
            redis_pid=self.redis.process.pid if self.redis is not None else None,
            raylet_pids=[pid for pid in map(keeper_heal.raylet_pid, self.specs) if pid is not None],
        )
        write_json(self.state_dir / "state.json", state.model_dump())  # 0600: holds the password

    def serve_requests(self) -> None:
        requests = self.state_dir / "requests"
        requests.mkdir(parents=True, exist_ok=True)
        while not self.stopping:
            for path in sorted(requests.glob("*.json")):
                self.answer(path)
            self.heal()
            time.sleep(POLL_S)

    def heal(self) -> None:
        """Restart an exited Redis, replace lost worker nodes, copy the durable keys."""
        try:
            changed = False
            if self.redis is not None and self.redis.process.poll() is not None:
                self.redis = keeper_heal.restart_redis(self.redis, self.durable)
                changed = True
            elif self.redis is not None and self.durable.due(time.monotonic()):
                self._snapshot()
            head_lost = bool(self.cluster.head_node.dead_processes())  # the cluster is gone
            for node in [] if head_lost else keeper_heal.lost_nodes(self.specs):
                spec = self.specs.pop(node)
                print(f"keeper: node {node.unique_id[:8]} lost; adding one like it", flush=True)
                self.cluster.remove_node(node, allow_graceful=False)
                self.specs[self.cluster.add_node(wait=False, **spec.ray_args())] = spec
                changed = True
            if changed:
                self.write_state()
        except Exception as exc:  # tried again at the next poll
            print(f"keeper: repair failed: {type(exc).__name__}: {exc}", flush=True)

    def _snapshot(self) -> None:
        import redis

        from controlplane.store.redis import sync_client

        client = sync_client(self.redis.url, socket_timeout=2)
        try:
            self.durable.take(client, time.monotonic())
        except redis.RedisError:
            pass  # Redis is busy or going down: keep the last copy
        finally:
            client.close()

    def answer(self, path: Path) -> None:
        done = path.with_suffix(".done")
        try:
            wanted = [NodeSpec.model_validate(n) for n in json.loads(path.read_text())]
            for node in wanted:
                self.specs[self.cluster.add_node(wait=False, **node.ray_args())] = node
            self.cluster.wait_for_nodes()
            self.nodes += wanted
            self.write_state()
            write_json(done, {"ok": True, "added": len(wanted)})
        except Exception as exc:  # answered to the waiting CLI, which reports it
            write_json(done, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        path.unlink(missing_ok=True)

    def _stop_serve(self) -> None:
        """Gracefully stop Serve from a separate driver process (in this process, which
        also hosts the head node, `serve.shutdown()` hangs). Skipped when the CLI already
        did it (it writes `serve-stopped` before signalling)."""
        marker = self.state_dir / SERVE_STOPPED
        if marker.exists():
            marker.unlink(missing_ok=True)
            return
        code = (
            "import ray; from ray import serve;"
            f" ray.init(address={self.cluster.address!r}, namespace='glmctl',"
            " log_to_driver=False); serve.shutdown()"
        )
        try:
            subprocess.run([sys.executable, "-c", code], timeout=SERVE_SHUTDOWN_S, check=False)
        except subprocess.TimeoutExpired:
            print("serve shutdown timed out; stopping the cluster anyway", file=sys.stderr)

    def shutdown(self) -> None:
        """Serve first (replicas stop engines and routers), then Ray, then Redis."""
        began = time.monotonic()
        if self.cluster is not None and gcs_reachable(self.cluster.address):
            self._stop_serve()
            print(f"keeper: serve stopped after {time.monotonic() - began:.1f} s", flush=True)
        elif self.cluster is not None:  # its processes died: nothing answers a driver
            print("keeper: the Ray cluster is gone; skipping Serve's shutdown", flush=True)
            self.cluster.shutdown()
            print(f"keeper: ray stopped after {time.monotonic() - began:.1f} s", flush=True)
        if self.redis is not None:
            self.redis.stop()
        (self.state_dir / "state.json").unlink(missing_ok=True)
        import shutil

        shutil.rmtree(self.tmpdir, ignore_errors=True)


def failure_text(exc: BaseException) -> str:
    """What the CLI shows for a failed start: a UserError as is (it has its fix), anything
    else as its type and message, followed by the first exception it was raised from."""
    if isinstance(exc, UserError):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not isinstance(cause, KeyboardInterrupt):
        text += f" (caused by {type(cause).__name__}: {cause})"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane.backends.ray.keeper")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--nodes", required=True, help="JSON list of NodeSpec")
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    nodes = [NodeSpec.model_validate(n) for n in json.loads(args.nodes)]
    from controlplane.settings import get_settings

    redis_url = get_settings().redis_url_with_password(args.redis_url)  # password: env only
    keeper = Keeper(args.state_dir, nodes, redis_url)

    def stop(signum: int, frame: Any) -> None:
        keeper.stopping = True

    try:
        try:
            keeper.start()
        except Exception as exc:
            write_json(args.state_dir / FAILED, {"error": failure_text(exc)})
            raise
        # After start: Ray's Node installs its own SIGTERM handler (drain, then exit), which
        # would skip the graceful Serve shutdown below.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        keeper.serve_requests()
    finally:
        keeper.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
