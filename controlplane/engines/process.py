"""`EngineProcess`: a started engine process of one node rank: health, metrics, drain, stop.

It runs one resolved `LaunchCommand` (base.py) in its own session and speaks to it over HTTP.
How it reads load while draining is the engine profile's (`metrics_long_poll`); the load
parser for Prometheus text is `base.running_requests`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controlplane.engines.base import LaunchCommand, running_requests
from controlplane.engines.registry import find_profile

# trtllm-serve's /metrics is a long poll: it answers once 2 s pass without a new iteration
# (openai_server.py `get_stats_async(2)`), so a drain keeps one read open (up to its time
# left, capped), and an empty list must persist over several polls (other readers drain
# the same queue) before it means idle.
TRTLLM_READ_CAP_S = 30.0
TRTLLM_QUIET_S = 1.0


@dataclass
class EngineProcess:
    """A started engine process of one node rank: health, metrics, drain, stop."""

    command: LaunchCommand
    base_url: str | None  # http://host:port when this rank serves HTTP
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, preexec: Callable[[], None] | None = None) -> EngineProcess:
        """Start the process in its own session (stop() ends its whole group).

        `preexec` runs in the child before exec (e.g. to die with its parent).
        """
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                list(self.command.argv),
                env={**os.environ, **self.command.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def _get(self, path: str, timeout: float) -> tuple[int, str]:
        assert self.base_url is not None
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as resp:
                return int(resp.status), resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), ""
        except (OSError, ValueError):
            return 0, ""

    def healthy(self, timeout: float = 2.0) -> bool:
        """True when the process runs and (if it serves HTTP) `/health` answers 200."""
        if not self.alive():
            return False
        return self.base_url is None or self._get("/health", timeout)[0] == 200

    def metrics(self, timeout: float = 2.0) -> str:
        """The engine's Prometheus `/metrics` text ('' when unavailable)."""
        if self.base_url is None:
            return ""
        status, text = self._get("/metrics", timeout)
        return text if status == 200 else ""

    def drain(self, timeout: float, flavor: str | None = None) -> bool:
        """Wait until no request runs (the router stopped sending); False on timeout.

        `flavor` names the engine whose API the process serves (a plan's `flavor`; None:
        Prometheus text). An engine whose profile says `metrics_long_poll` (TensorRT-LLM's
        JSON list, drained by every reader, router/engine_metrics.py) is read differently:
        a failed read is not idle, and `[]` (no iteration since the last read, which may
        have been the router's) must hold for TRTLLM_QUIET_S before the engine counts idle."""
        profile = find_profile(flavor) if flavor else None
        trtllm = profile is not None and profile.metrics_long_poll
        quiet_needed = TRTLLM_QUIET_S if trtllm else 0.0
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline and self.alive():
            left = deadline - time.monotonic()
            idle = self._idle_trtllm(left) if trtllm else running_requests(self.metrics()) == 0
            now = time.monotonic()
            quiet_since = (quiet_since or now) if idle else None
            if quiet_since is not None and now - quiet_since >= quiet_needed:
                return True
            time.sleep(0.2)
        return not self.alive()

    def _idle_trtllm(self, left: float) -> bool:
        """One long-poll read (up to the drain's time left): idle when it holds no
        iteration, or the newest shows no active and no queued request."""
        from controlplane.router.engine_metrics import latest_iteration

        text = self.metrics(timeout=max(0.5, min(left, TRTLLM_READ_CAP_S)))
        if not text.strip():
            return False  # no answer: unknown, not idle
        latest = latest_iteration(text)
        if latest is None:
            return text.strip() == "[]"
        return not latest.get("numActiveRequests") and not latest.get("numQueuedRequests")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL after `timeout` s (idempotent)."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
