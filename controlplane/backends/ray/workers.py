"""`RankWorker`: the Ray actor that runs one node rank's engine process inside its bundle.

One per bundle of a replica's placement group (node rank = bundle index). It reserves
ports on its node, starts the process with the run-time values filled in, answers health
and metrics, drains and stops it. The process gets SIGTERM if the worker dies (Linux
`PR_SET_PDEATHSIG`), so a killed replica leaves no orphan engine behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path
from typing import Any

from controlplane.backends.ray.loopback import LOOPBACK
from controlplane.engines import EngineProcess, LaunchCommand
from controlplane.local.ports import free_port

LOG_TAIL_BYTES = 2000


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class RankWorker:
    """Plain class; `ray.remote(RankWorker)` makes the actor (see serve_app.py)."""

    def __init__(self, deployment: str, replica_id: str, rank: int, log_dir: str) -> None:
        self.deployment = deployment
        self.replica_id = replica_id
        self.rank = rank
        self.log_path = Path(log_dir) / f"{deployment}-{replica_id}-rank{rank}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.engine: EngineProcess | None = None

    def node(self) -> dict[str, Any]:
        """Where this rank runs: Ray node id, address, the GPUs Ray gave it."""
        import ray

        ctx = ray.get_runtime_context()
        return {
            "rank": self.rank,
            "node_id": ctx.get_node_id(),
            "host": LOOPBACK
            if ray.util.get_node_ip_address() == LOOPBACK
            else ray.util.get_node_ip_address(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            # What Ray set for this worker (a runtime fact, not user configuration).
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "pid": os.getpid(),
        }

    def reserve(self, kv_ranks: int = 0) -> dict[str, str]:
        """Ports on this node for its HTTP server (rank 0's API, a rank > 0's health), a PD
        replica's KV handshake and the rendezvous: GLMCTL_ENGINE_PORT / GLMCTL_DIST_PORT
        where set (a Kubernetes pod runs one engine, on named ports), else free ones; with
        `kv_ranks`, the KV-event ports too (engines/kv_events_args.py)."""
        from controlplane.engines.kv_events_args import kv_ports
        from controlplane.settings import get_settings

        settings = get_settings()
        host = self.node()["host"]
        return {
            **(kv_ports(kv_ranks, host) if kv_ranks else {}),
            "host": host,
            "port": str(settings.engine_port or free_port(host)),
            "dist_host": host,
            "dist_port": str(settings.dist_port or free_port(host)),
            "python": sys.executable,
            # A PD replica's KV handshake (engines/base.py BOOTSTRAP_PORT); unused otherwise.
            "bootstrap_port": str(free_port(host)),
        }

    def start(self, argv: list[str], env: dict[str, str], values: dict[str, str]) -> int:
        """Start the process; returns its pid."""
        command = LaunchCommand(tuple(argv), env, serves_http=self.rank == 0).resolve(values)
        base = f"http://{values['host']}:{values['port']}" if command.serves_http else None
        self.engine = EngineProcess(command, base, self.log_path)
        self.engine.start(preexec=_die_with_parent)
        assert self.engine.process is not None
        return self.engine.process.pid

    def healthy(self) -> bool:
        return self.engine is None or self.engine.healthy()

    def alive(self) -> bool:
        return self.engine is None or self.engine.alive()

    def failure(self) -> str:
        """Exit code and the log's last lines (for an apply that failed)."""
        code = self.engine.exit_code() if self.engine else None
        tail = ""
        if self.log_path.exists():
            data = self.log_path.read_bytes()[-LOG_TAIL_BYTES:]
            tail = data.decode("utf-8", "replace").strip()
        host = self.node()["host"]
        return f"rank {self.rank} on {host} exit code {code}; log {self.log_path}:\n{tail}"

    def metrics(self) -> str:
        return self.engine.metrics() if self.engine else ""

    def drain(self, timeout: float, flavor: str | None = None) -> bool:
        return self.engine.drain(timeout, flavor) if self.engine else True

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
