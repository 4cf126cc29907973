"""Router processes: one worker per core, each with its own SO_REUSEPORT socket.

A shared socket (uvicorn's `--workers`) let one worker take every connection
(../shared/reference/router-baselines.md): each worker here binds its own socket
(SO_REUSEPORT, TCP_NODELAY, inherited by accepted connections on Linux) and serves it with
the router's own HTTP server (router/http_server.py) on uvloop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

from controlplane.errors import UserError
from controlplane.router.config import RouterConfig
from controlplane.router.state import StateConfig

MAX_CONNECTIONS = 8192


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket other processes can bind too (the kernel spreads connections)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port}: {exc}.", fix="choose a free port with --port."
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when its supervisor dies (no orphaned workers)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").prctl(pr_set_pdeathsig, signal.SIGTERM)


def serve_worker(config: RouterConfig) -> None:
    """Run one router worker in this process until SIGTERM/SIGINT (router/http_server.py
    on uvloop)."""
    import asyncio

    import uvloop

    from controlplane.router.app import RouterApp
    from controlplane.router.http_server import ServerLimits, serve

    sock = reuseport_socket(config.host, config.port)
    limits = config.limits
    server_limits = ServerLimits(
        max_headers=limits.max_headers,
        max_header_bytes=limits.max_header_bytes,
        head_timeout_s=limits.client_idle_timeout,
        keep_alive_s=min(30.0, max(1.0, limits.client_idle_timeout)),
        max_connections=MAX_CONNECTIONS,  # per worker; past it the answer is 503
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(RouterApp(config), [sock], server_limits, stop)

    uvloop.run(main())


def check_start(config: RouterConfig) -> None:
    """Refuse to start (UserError with a fix) when Redis refuses the password, when the
    router would serve without keys on an address other machines reach (router/auth.py),
    or when an external endpoint's key is not where its reference says (then register the
    external endpoints, so status and every router see them)."""
    from controlplane.router.auth import refuse_open_bind
    from controlplane.router.external import sync_registry
    from controlplane.router.external_route import routes
    from controlplane.router.keys import RedisAuthError, count_keys

    key_count: int | None = None
    try:
        key_count = count_keys(config.redis_url, config.state.namespace)
    except RedisAuthError:
        raise
    except UserError:  # Redis unreachable: routers tolerate that, but cannot count keys
        key_count = None
    refuse_open_bind(config.auth, config.host, key_count)
    routes(config.external, config.secrets_dir)
    if key_count is not None:
        sync_registry(config.redis_url, config.state.namespace, config.external)


def supervise(config: RouterConfig) -> None:
    """Start `config.workers` worker processes; restart any that dies; stop all on SIGTERM."""
    check_start(config)
    if config.workers <= 1:
        serve_worker(config)
        return
    command = [sys.executable, "-m", "controlplane.router", *config.cli_args(), "--worker"]
    env = {**os.environ, **config.child_env()}
    children = [subprocess.Popen(command, env=env) for _ in range(config.workers)]
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(0.2)
        for index, child in enumerate(children):
            if child.poll() is not None and not stopping:
                children[index] = subprocess.Popen(command, env=env)
    _terminate(children)


def _terminate(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@dataclass
class RouterProcesses:
    """Router workers started in the background (for the planner, tests, benchmarks).

    `stop()` is idempotent.
    """

    config: RouterConfig
    process: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    @classmethod
    def start(
        cls,
        redis_url: str,
        port: int | None = None,
        workers: int = 1,
        policy: str = "prefix_affinity",
        namespace: str = "glmctl",
        timeout: float = 20.0,
        log_file: str | None = None,
        **options: Any,
    ) -> RouterProcesses:
        """Start `python -m controlplane.router ...`; returns once /health answers.

        `options`: other `RouterConfig` fields that `cli_args()` carries
        (max_queue_per_endpoint, session_header, scrape_interval, external, overflow_at).
        `log_file`: where its output goes (default: this process's).
        """
        from controlplane.local.ports import free_port

        config = RouterConfig(
            redis_url=redis_url,
            port=port or free_port(),
            workers=workers,
            policy=policy,
            state=replace(StateConfig(), namespace=namespace),
            **options,
        )
        handle = cls(config)
        command = [sys.executable, "-m", "controlplane.router", *config.cli_args()]
        env = {**os.environ, **config.child_env()}
        log = open(log_file, "ab") if log_file else None  # noqa: SIM115  (the child owns it)
        try:
            handle.process = subprocess.Popen(
                command, start_new_session=True, env=env, stdout=log, stderr=log
            )
        finally:
            if log is not None:
                log.close()
        if not handle.wait_healthy(timeout):
            handle.stop()
            raise UserError(
                f"router did not answer on {handle.url}/health in {timeout:.0f} s.",
                fix="run `python -m controlplane.router` by hand to see its error.",
            )
        return handle

    def wait_healthy(self, timeout: float) -> bool:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/health", timeout=1) as response,
            ):
                if response.status == 200:
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """SIGTERM the supervisor (it stops its workers); SIGKILL the group if it hangs."""
        if self.process is not None:
            _terminate([self.process])
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)  # any worker left behind
        self.process = None
