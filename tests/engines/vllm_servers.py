"""A real vLLM API server started by an engines-tier test: waiting for it, stopping it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

START_TIMEOUT_S = 900  # servers starting on a few shared cores (about 1 min when idle)


def wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Until `url/health` answers 200; the log's tail when the server exits or never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    raise AssertionError(f"vLLM ({log.stem}) did not come up (exit {process.poll()}):\n{tail}")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """The API server and its engine core (the process group the test created)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
