"""Which Ray cluster glmctl talks to: the embedded one (keeper process) or `--address`.

Embedded: `ensure_embedded(state_dir, nodes)` starts the keeper if none runs (a detached
process that outlives this command) or asks it for missing nodes; later commands find it
through `state_dir/embedded/state.json`. `connect()` joins as a driver (with a timeout:
`ray.init` to a dead address retries for a long time).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.backends.ray.keeper import (
    FAILED,
    SERVE_STOPPED,
    KeeperState,
    NodeSpec,
    write_json,
)
from controlplane.backends.ray.loopback import (
    LOOPBACK,
    NAMESPACE,
    apply_environment,
    ray_environment,
)
from controlplane.errors import UserError
from controlplane.local.secrets import url_password, without_password
from controlplane.planner.inventory import GIB, Inventory, InventoryNode, from_ray_nodes

KEEPER_START_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 30.0
HEAL_STOP_TIMEOUT_S = 15.0  # a keeper whose cluster died skips Serve's shutdown: seconds
# Ray Client (`ray://`): the head starts a server process per client first (8 s measured on
# an idle 2-core machine, over 30 s under load).
CLIENT_CONNECT_TIMEOUT_S = 120.0
# The head failed to start its per-client server this time (seen under load: "Starting Ray
# client server failed"; a zombie of an earlier client's server: "Initialization failure
# from server ... ZombieProcess"): worth another try.
_CLIENT_SERVER_FAILED = re.compile(r"client server failed|Initialization failure from server")


@dataclass(frozen=True)
class Target:
    """A cluster to deploy on, and the Redis its routers share."""

    address: str
    redis_url: str
    embedded: bool
    tmpdir: str | None = None
    healed: bool = False  # the embedded cluster had died and was restarted for this command


def embedded_dir(state_dir: Path) -> Path:
    return state_dir / "embedded"


def _alive(pid: int) -> bool:
    try:  # reap it if it is our own child (else an exited keeper lingers as a zombie)
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def embedded_state(state_dir: Path) -> KeeperState | None:
    """The running keeper's state, or None when none runs (stale state is removed)."""
    path = embedded_dir(state_dir) / "state.json"
    if not path.exists():
        return None
    try:
        state = KeeperState.model_validate_json(path.read_text())
    except ValueError:
        return None
    if not _alive(state.pid):
        path.unlink(missing_ok=True)
        return None
    return state


def node_specs(nodes: list[InventoryNode]) -> list[NodeSpec]:
    return [
        NodeSpec(
            gpu_type=n.gpu_type,
            gpus=n.gpus_total,
            cpus=n.cpus_total,
            memory_gib=round(n.memory_bytes / GIB),
            labels=dict(n.labels),
        )
        for n in nodes
    ]


def start_embedded(state_dir: Path, nodes: list[NodeSpec], redis_url: str | None) -> KeeperState:
    """Start the keeper (detached) and wait for its state file.

    A keeper that fails to start writes why to `failed.json`; that first cause (or the last
    line it logged) is raised as the UserError, instead of a time-out.
    """
    folder = embedded_dir(state_dir)
    argv = [sys.executable, "-m", "controlplane.backends.ray.keeper", "--state-dir", str(folder)]
    argv += ["--nodes", json.dumps([n.model_dump() for n in nodes])]
    secret_env: dict[str, str] = {}
    if redis_url:  # its password goes by environment, not on a command line
        argv += ["--redis-url", without_password(redis_url)]
        password = url_password(redis_url)
        secret_env = {"GLMCTL_REDIS_PASSWORD": password} if password else {}
    log = _open_keeper_log(state_dir)
    log_start = log.tell()
    with log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **ray_environment(), **secret_env},
        )
    # Import Ray and Serve here while the keeper starts the cluster (seconds saved); the
    # loopback settings Ray reads at import must be in place first.
    apply_environment(ray_environment())
    threading.Thread(target=_preimport, daemon=True).start()
    deadline = time.monotonic() + KEEPER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = embedded_state(state_dir)
        if state is not None and state.pid == process.pid:
            return state
        if process.poll() is not None:
            raise _start_failure(folder, log_start, process.returncode)
        time.sleep(0.1)
    if process.poll() is None:
        process.terminate()
    raise UserError(
        f"the embedded Ray cluster did not start in {KEEPER_START_TIMEOUT_S:.0f} s"
        f" (keeper exit code {process.poll()}).",
        fix=f"read {folder / 'keeper.log'}; check free memory (each simulated node costs"
        " about 0.3 GiB).",
    )


def _open_keeper_log(state_dir: Path) -> Any:
    """The keeper's log, opened for appending (a fresh start forgets the last failure)."""
    folder = embedded_dir(state_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FAILED).unlink(missing_ok=True)
        return open(folder / "keeper.log", "ab")  # the caller closes it
    except OSError as exc:
        raise UserError(
            f"the state directory {state_dir} is not writable ({exc.strerror or exc}).",
            fix="set GLMCTL_STATE_DIR to a folder you can write to, or fix its permissions.",
        ) from exc


def _start_failure(folder: Path, log_start: int, code: int | None) -> UserError:
    """Why the keeper exited: its `failed.json`, else the last line it logged."""
    failed = folder / FAILED
    log = folder / "keeper.log"
    if failed.exists():
        error = str(json.loads(failed.read_text()).get("error", "unknown error"))
    else:
        with open(log, "rb") as handle:
            handle.seek(log_start)
            lines = [x for x in handle.read().decode(errors="replace").splitlines() if x.strip()]
        error = lines[-1].strip() if lines else f"exit code {code}, nothing logged"
    message = f"the embedded Ray cluster did not start: {error}"
    if "To fix:" in error:
        return UserError(message)
    return UserError(message, fix=f"read {log} for the whole story.")


def _preimport() -> None:
    import contextlib

    with contextlib.suppress(Exception):
        import ray.serve  # noqa: F401


def add_embedded_nodes(state_dir: Path, nodes: list[NodeSpec], timeout: float = 60.0) -> None:
    """Ask the running keeper for more simulated nodes and wait until they joined."""
    requests = embedded_dir(state_dir) / "requests"
    requests.mkdir(parents=True, exist_ok=True)
    request = requests / f"{uuid.uuid4().hex[:8]}.json"
    write_json(request, [n.model_dump() for n in nodes])
    done = request.with_suffix(".done")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.exists():
            answer = json.loads(done.read_text())
            done.unlink(missing_ok=True)
            if not answer.get("ok"):
                raise UserError(f"adding simulated nodes failed: {answer.get('error')}")
            return
        time.sleep(0.1)
    raise UserError(f"the embedded cluster did not add {len(nodes)} node(s) in {timeout:.0f} s.")


def stop_embedded(state_dir: Path, timeout: float = 90.0, serve_stopped: bool = False) -> bool:
    """SIGTERM the keeper and wait for it (False when none ran).

    `serve_stopped`: the caller already ran `serve.shutdown()`, the keeper skips it.
    """
    state = embedded_state(state_dir)
    if state is None:
        return False
    if serve_stopped:
        (embedded_dir(state_dir) / SERVE_STOPPED).touch()
    os.kill(state.pid, 15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(state.pid):
        time.sleep(0.2)
    return True


def heal_embedded(state_dir: Path, state: KeeperState, redis_url: str | None) -> KeeperState:
    """Restart an embedded cluster whose Ray processes died under a live keeper, with the
    same simulated nodes. Deployments that ran on it are gone (its Redis restarts too)."""
    stop_embedded(state_dir, timeout=HEAL_STOP_TIMEOUT_S)
    if _alive(state.pid):  # never wait long for a keeper whose cluster is gone
        os.kill(state.pid, 9)
    (embedded_dir(state_dir) / "state.json").unlink(missing_ok=True)
    return start_embedded(state_dir, list(state.nodes), redis_url)


def _driver_environment(target: Target) -> dict[str, str]:
    """Loopback settings for the embedded cluster and any cluster given by a loopback
    address (else Ray swaps 127.0.0.1 for the machine's network address); usage stats off."""
    if target.embedded:
        return ray_environment(Path(target.tmpdir) if target.tmpdir else None)
    host = target.address.removeprefix("ray://").rsplit(":", 1)[0]
    if host in (LOOPBACK, "localhost"):
        return ray_environment()
    return {"RAY_USAGE_STATS_ENABLED": "0"}


def _init_once(target: Target, timeout: float) -> str | None:
    """One `ray.init` with a timeout; None on success, else why it failed."""
    import ray

    error: list[BaseException] = []

    def init() -> None:
        try:
            ray.init(
                address=target.address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=init, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no answer in {timeout:.0f} s"
    return f"{type(error[0]).__name__}: {error[0]}" if error else None


def connect_error(target: Target, why: str) -> UserError:
    """The UserError for a failed `ray.init` (pure): a Ray or Python version mismatch names
    both versions and the install that matches; otherwise the address is suspect."""
    found = re.search(
        r"started with:\s*Ray: (\S+)\s*Python: (\S+).*?started with:\s*Ray: (\S+)\s*Python: (\S+)",
        why,
        re.S,
    )
    if "Version mismatch" in why and found:
        ray_there, py_there, ray_here, py_here = found.groups()
        return UserError(
            f"the Ray cluster at {target.address} runs Ray {ray_there} on Python {py_there};"
            f" glmctl here has Ray {ray_here} on Python {py_here}, and Ray needs both to match.",
            fix=f"run glmctl from an environment with Python {py_there} and"
            f" pip install 'ray[serve]=={ray_there}', or start the cluster with Ray {ray_here}.",
        )
    if target.embedded:
        return UserError(
            f"the embedded Ray cluster at {target.address} does not answer ({why}).",
            fix="run the command again: glmctl restarts the embedded cluster when it died"
            " (or see `glmctl doctor`).",
        )
    return UserError(
        f"cannot reach the Ray cluster at {target.address} ({why}).",
        fix="check the address (`--address` / RAY_ADDRESS; from outside the cluster use"
        " ray://HEAD:10001), or leave it unset for the embedded local cluster.",
    )


def connect(target: Target, timeout: float | None = None) -> None:
    """Join the cluster as a driver (idempotent); raises UserError after `timeout`.

    Through Ray Client, a server process that the head fails to start for this client
    (see _CLIENT_SERVER_FAILED) is retried until `timeout`."""
    client = target.address.startswith("ray://")
    if timeout is None:
        timeout = CLIENT_CONNECT_TIMEOUT_S if client else CONNECT_TIMEOUT_S
    apply_environment(_driver_environment(target))
    import ray

    if ray.is_initialized():
        return
    for noisy in ("ray", "ray.serve", "ray._private.worker"):  # keep the CLI's output ours
        logging.getLogger(noisy).setLevel(logging.ERROR)
    deadline = time.monotonic() + timeout
    while True:
        why = _init_once(target, max(1.0, deadline - time.monotonic()))
        if why is None:
            return
        retry = client and _CLIENT_SERVER_FAILED.search(why) and time.monotonic() < deadline - 5
        if not retry:
            break
        time.sleep(2.0)
    raise connect_error(target, why)


def cluster_view() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`ray.nodes()` and the free resources of each node, read by a cluster member."""
    import ray
    from ray._private import state as ray_state

    return ray.nodes(), ray_state.available_resources_per_node()


def client_mode() -> bool:
    """Connected through Ray Client (`ray://`): this machine is not a cluster node."""
    from ray.util.client import ray as client

    return bool(client.is_connected())


def live_inventory(simulated: bool) -> Inventory:
    """The connected cluster's nodes and free resources.

    Through Ray Client the driver has no cluster state of its own, so a zero-CPU task
    reads it on the cluster."""
    import ray

    if client_mode():
        nodes, available = ray.get(ray.remote(num_cpus=0)(cluster_view).remote(), timeout=60)
    else:
        nodes, available = cluster_view()
    return from_ray_nodes(nodes, available, simulated_gpus=simulated)
