"""A local `prometheus` process on a loopback port: the embedded default's metrics store.

`start_prometheus` starts Debian's `prometheus` with a config file observe/ wrote and waits
until it is ready (the caller owns the process); `reload` makes it re-read config and
rules (SIGHUP). What Prometheus scrapes and evaluates is observe/prometheus.py's.
See ../shared/reference/ops-tooling.md for how Prometheus runs here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from controlplane.errors import UserError

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 20.0


def binary() -> str:
    """The `prometheus` executable; a UserError with the fix when it is missing."""
    found = shutil.which("prometheus")
    if found is None:
        raise UserError(
            "`prometheus` is not installed, so the embedded cluster has no metrics store.",
            fix="run `sudo ops/install-system-deps.sh` (Debian's prometheus package).",
        )
    return found


def start_prometheus(
    config: Path,
    data: Path,
    log_path: Path,
    port: int,
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start Prometheus with `config` on 127.0.0.1:`port`, TSDB in `data`, output appended
    to `log_path`; wait until it is ready (the caller owns the process)."""
    import urllib.request

    data.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    argv = [
        binary(),
        f"--config.file={config}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=2d",
    ]
    process = subprocess.Popen(
        argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=preexec
    )
    url = f"http://{LOOPBACK}:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(
                f"prometheus exited with code {process.returncode} at start.",
                fix=f"read {log_path}.",
            )
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise UserError(f"prometheus did not become ready on {url} in {READY_TIMEOUT_S:.0f} s.")


def reload(process: subprocess.Popen[bytes]) -> None:
    """Re-read config and rules (file-SD changes need no reload)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGHUP)
