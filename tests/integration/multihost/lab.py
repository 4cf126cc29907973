"""A multi-host Ray cluster on one machine: network namespaces on a private bridge.

Each "host" is a network namespace with its own address on a bridge that lives in a
namespace of its own (shared/reference/ray-on-one-machine.md, "Several hosts"), so no
link, address or route is added to the machine's own network. `ray start` runs in the
host namespaces exactly as on VMs; a client namespace on the same bridge runs glmctl as a
laptop outside the cluster would. `Lab.close()` ends every process in the namespaces by
its id (`ip netns pids`) and deletes the namespaces, which removes their veth ends; it is
safe to call twice and after a partial start.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.backends.ray.loopback import ray_environment

SUBNET = "10.77.0"
INHERITED_RAY_VARIABLES = (
    *ray_environment(Path("/")),  # controlplane.backends.ray.loopback
    "RAY_ADDRESS",
    "GLMCTL_REDIS_URL",
)
VENV_BIN = Path(sys.executable).parent


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def netns_supported() -> str | None:
    """None when namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"glprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except RuntimeError as exc:
        return str(exc)
    _ip("netns", "del", probe)
    return None


@dataclass
class Host:
    name: str  # namespace name
    address: str
    index: int


@dataclass
class Lab:
    """Namespaces `<prefix>-lab` (bridge) and `<prefix>-<host>`; addresses 10.77.0.<i>."""

    workdir: Path
    prefix: str = field(default_factory=lambda: f"gl{secrets.token_hex(3)}")
    hosts: dict[str, Host] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-lab"

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def start_bridge(self) -> None:
        self._add_ns(self.bridge_ns)
        _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge_ns, "link", "set", "br0", "up")

    def add_host(self, host: str) -> Host:
        """A namespace joined to the bridge with address 10.77.0.<n>."""
        index = len(self.hosts) + 1
        name = f"{self.prefix}-{host}"
        self._add_ns(name)
        # Created directly inside the two namespaces: no name ever exists on the machine.
        veth = ["link", "add", "name", "eth0", "netns", name, "type", "veth"]
        _ip(*veth, "peer", "name", f"p{index}", "netns", self.bridge_ns)
        _ip("-n", self.bridge_ns, "link", "set", f"p{index}", "master", "br0")
        _ip("-n", self.bridge_ns, "link", "set", f"p{index}", "up")
        address = f"{SUBNET}.{index}"
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        self.hosts[host] = Host(name, address, index)
        return self.hosts[host]

    def command(self, host: str, argv: Sequence[str], env: Mapping[str, str] = ()) -> list[str]:
        """`argv` run inside `host`'s namespace with `env` added. Variables an embedded
        cluster's driver sets in this process (loopback-only Ray) are removed: a test run
        after one would otherwise start hosts that refuse to form a multi-node cluster."""
        extra = [f"{k}={v}" for k, v in dict(env).items()]
        unset = [arg for name in INHERITED_RAY_VARIABLES for arg in ("-u", name)]
        return ["ip", "netns", "exec", self.hosts[host].name, "env", *unset, *extra, *argv]

    def run(
        self, host: str, argv: Sequence[str], env: Mapping[str, str] = (), timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(host, argv, env), capture_output=True, text=True, timeout=timeout
        )

    def ray_env(self, host: str) -> dict[str, str]:
        tmp = self.workdir / host
        tmp.mkdir(parents=True, exist_ok=True)
        return {"RAY_TMPDIR": str(tmp), "RAY_USAGE_STATS_ENABLED": "0"}

    def ray_start(
        self, host: str, head: str | None, gpus: int, resources: Mapping[str, float], cpus: int
    ) -> None:
        """`ray start` on `host`: the head when `head` is None, else a worker joining it."""
        me = self.hosts[host]
        argv = [str(VENV_BIN / "ray"), "start", "--node-ip-address", me.address]
        argv += ["--num-cpus", str(cpus), "--num-gpus", str(gpus)]
        argv += ["--resources", json.dumps(dict(resources)), "--disable-usage-stats"]
        argv += ["--temp-dir", str(self.workdir / host)]
        if head is None:
            argv += ["--head", "--port", "6379", "--include-dashboard=false"]
        else:
            argv += ["--address", f"{self.hosts[head].address}:6379"]
        done = self.run(host, argv, self.ray_env(host))
        if done.returncode != 0:
            raise RuntimeError(f"ray start on {host} failed:\n{done.stdout}\n{done.stderr}")

    def pids(self, namespace: str) -> list[int]:
        with contextlib.suppress(RuntimeError):
            return [int(p) for p in _ip("netns", "pids", namespace).split()]
        return []

    def close(self) -> None:
        """End every process in the lab's namespaces (by id), delete the namespaces."""
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            pids = [p for ns in self.namespaces for p in self.pids(ns)]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while pids and time.monotonic() < deadline:
                pids = [p for ns in self.namespaces for p in self.pids(ns)]
                time.sleep(0.2)
            if not pids:
                break
        for name in reversed(self.namespaces):
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", name)
        self.namespaces.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Namespaces of this lab still present (empty after `close`)."""
        present = _ip("netns", "list")
        return [line.split()[0] for line in present.splitlines() if line.startswith(self.prefix)]
