"""Gather `glmctl doctor`'s facts from this machine (the I/O half; verdicts are in checks.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from controlplane.doctor.checks import Facts, embedded_memory_needed
from controlplane.doctor.extras import extras_status, requirement_table
from controlplane.settings import get_settings

if TYPE_CHECKING:
    from controlplane.spec import Topology

BINARIES = ("redis-server", "prometheus")


def binary_version(name: str) -> str | None:
    """The first line of `NAME --version`, or None when NAME is not on PATH."""
    path = shutil.which(name)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path} (--version failed: {exc})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else path


def memory_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def ray_facts() -> tuple[str | None, str | None]:
    """Ray's installed version, and the specifier the installed glmctl asks for."""
    try:
        version: str | None = metadata.version("ray")
    except metadata.PackageNotFoundError:
        version = None
    requirement = None
    try:
        for line in metadata.requires("glmctl") or []:
            name = line.split(";")[0].strip()
            if name.startswith("ray"):
                requirement = name.split("]", 1)[-1].removeprefix("ray").strip() or None
    except metadata.PackageNotFoundError:
        pass
    return version, requirement


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def state_dir_error(folder: Path) -> str | None:
    """None when glmctl can create and write `folder`, else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"not writable ({exc.strerror or exc})"
    return None


def topology_memory(topology: Topology) -> tuple[int, str]:
    """Bytes the embedded default needs for `topology`, and how to name it."""
    from controlplane.planner import embedded_inventory

    nodes = len(embedded_inventory(topology).nodes)
    replicas = max(topology.spec.replicas.max or 1, topology.spec.replicas.min, 1)
    ranks = replicas * topology.nodes
    routers = topology.spec.router.replicas
    need = embedded_memory_needed(nodes, ranks, routers)
    what = f"{topology.name} ({nodes} node(s), {ranks} engine rank(s), {routers} router(s))"
    return need, what


def cluster_line(address: str) -> str:
    """`--address`: node and GPU counts of the cluster, or `error: ...`."""
    from controlplane.backends.ray import cluster
    from controlplane.backends.ray.keeper import gcs_reachable
    from controlplane.errors import UserError

    if "://" not in address and not gcs_reachable(address):  # fail in 2 s, not ray.init's 15
        return (
            f"error: nothing answers at {address} (the cluster's GCS address). To fix: check"
            " the address (`ray status` on the head node prints it) and that this machine"
            " reaches it."
        )
    settings = get_settings()
    target = cluster.Target(address, settings.redis_url or "", embedded=False)
    try:
        cluster.connect(target, timeout=15.0)
        inventory = cluster.live_inventory(simulated=False)
    except UserError as exc:
        return f"error: {exc}"
    gpus = sum(n.gpus_total for n in inventory.nodes)
    types = sorted({n.gpu_type for n in inventory.nodes if n.gpu_type})
    return f"{address}: {len(inventory.nodes)} node(s), {gpus} GPU(s) {', '.join(types)}".rstrip()


def gather(topology: Topology | None, memory_override: int | None, address: str | None) -> Facts:
    """Every fact the checks need. `memory_override`: declared free memory (bytes)."""
    settings = get_settings()
    need, what = topology_memory(topology) if topology is not None else (None, "")
    ray_version, ray_requirement = ray_facts()
    ports = [topology.spec.router.port] if topology is not None else [8000]
    cache = settings.engine_cache_dir
    venvs_dir = cache / "venvs"
    venvs = sorted(p.name for p in venvs_dir.iterdir() if p.is_dir()) if venvs_dir.is_dir() else []
    existing = next((p for p in (cache, *cache.parents) if p.exists()), None)
    return Facts(
        python=(sys.version_info.major, sys.version_info.minor, sys.version_info.micro),
        extras_missing=extras_status() if requirement_table() else {},
        binaries={name: binary_version(name) for name in BINARIES},
        ray_version=ray_version,
        ray_requirement=ray_requirement,
        memory_available=memory_override if memory_override is not None else memory_available(),
        memory_needed=need,
        memory_needed_for=what,
        ports_taken=[p for p in ports if port_taken(p)],
        state_dir=str(settings.state_dir),
        state_dir_error=state_dir_error(settings.state_dir),
        engine_cache=str(cache),
        engine_venvs=venvs,
        engine_cache_free=shutil.disk_usage(existing).free if existing else None,
        redis_url_set=bool(settings.redis_url),
        cluster=cluster_line(address) if address else None,
    )
