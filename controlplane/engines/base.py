"""The engine interface: build the launch command, start, health, metrics, drain, stop.

Command builders (`sglang.py`, `vllm.py`, the simulator's in `__init__.py`) are pure
functions `build_command(topology, context) -> LaunchCommand | None` (None: this node rank
runs no process of its own). Addresses that only exist at run time (the node's host, a free
port, rank 0's rendezvous address) appear in the argv as placeholders that
`LaunchCommand.resolve` fills in, so a plan's commands are stable and diffable.
`EngineProcess` runs one resolved command and speaks to it over HTTP.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from controlplane.catalog.formats import QuantLaunch, quant_launch
from controlplane.engines.metric_names import running_names

# Placeholders a launch command may hold until the worker that starts it knows the values.
HOST = "{host}"  # the address this rank's HTTP server binds (rank 0 only)
PORT = "{port}"  # a free port on this rank's node for the HTTP server
DIST_HOST = "{dist_host}"  # rank 0's address for the collective rendezvous
DIST_PORT = "{dist_port}"  # a free port on rank 0's node for that rendezvous
PYTHON = "{python}"  # the interpreter running glmctl (the simulator ships with it)
PLACEHOLDERS = (HOST, PORT, DIST_HOST, DIST_PORT, PYTHON)


@dataclass(frozen=True)
class LaunchContext:
    """Where one node rank of one replica runs; the builder's only input besides the spec."""

    node_rank: int = 0
    nnodes: int = 1
    mem_fraction: float | None = None  # from the capacity model; None: the engine's own rule
    model_path: str | None = None  # a local folder instead of the catalog's HF repository
    # How long the engine may finish in-flight requests after a SIGTERM: the replica's
    # drain timeout (planner), the number Ray Serve's graceful shutdown is set from too.
    shutdown_timeout_s: float | None = None


@dataclass(frozen=True)
class LaunchCommand:
    """One process to start on one node rank."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    serves_http: bool = True  # rank 0 serves the OpenAI API; other ranks join its collectives

    def resolve(self, values: Mapping[str, str]) -> LaunchCommand:
        """Fill the placeholders (`{host}`, `{port}`, ...) from `values`; others stay as is."""

        def fill(text: str) -> str:
            for key, value in values.items():
                text = text.replace("{" + key + "}", value)
            return text

        return replace(
            self,
            argv=tuple(fill(a) for a in self.argv),
            env={k: fill(v) for k, v in self.env.items()},
        )

    def unresolved(self) -> list[str]:
        """Placeholders still present (a command is ready to run when this is empty)."""
        text = " ".join(self.argv) + " " + " ".join(self.env.values())
        return sorted({p for p in PLACEHOLDERS if p in text})

    def shell(self) -> str:
        """The command as one shell line (for people: `glmctl plan -o text`)."""
        import shlex

        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return (env + " " if env else "") + shlex.join(self.argv)


@dataclass(frozen=True)
class ServingFlags:
    """One engine's names for the serving settings SGLang and vLLM both take."""

    module: str  # `python -m <module>` starts the OpenAI-compatible server
    model: str
    context_length: str
    max_seqs: str
    mem_fraction: str
    chunked_prefill: str
    kv_cache_dtype: Mapping[Any, str]  # Precision -> the engine's KV dtype name
    engine: str = ""  # "vllm" / "sglang": whose `--quantization` names (catalog/formats.py)


def serving_args(
    topology: Any, context: LaunchContext, flags: ServingFlags, parallel: list[str]
) -> list[str]:
    """`python -m <server>` with model, name, `parallel`, context, batch and memory flags."""
    spec = topology.spec
    argv = ["python", "-m", flags.module, flags.model, context.model_path or topology.model.hf_repo]
    argv += ["--served-model-name", topology.served_model_name, *parallel]
    argv += quantization_args(topology, flags.engine)
    argv += [flags.context_length, str(topology.context_length)]
    argv += [flags.max_seqs, str(spec.max_num_seqs)]
    if topology.kv_cache_dtype in flags.kv_cache_dtype:
        argv += ["--kv-cache-dtype", flags.kv_cache_dtype[topology.kv_cache_dtype]]
    if context.mem_fraction is not None:
        argv += [flags.mem_fraction, f"{context.mem_fraction:.3f}"]
    if spec.engine.chunked_prefill:
        argv += [flags.chunked_prefill, str(spec.engine.chunked_prefill)]
    if spec.engine.cpu_offload_gb:
        argv += ["--cpu-offload-gb", f"{spec.engine.cpu_offload_gb:g}"]
    return argv


def quantization_args(topology: Any, engine: str) -> list[str]:
    """`--quantization X` when the engine must be told the format (catalog/formats.py);
    resolve has already refused what the engine cannot load."""
    launch = quant_launch(topology.model, topology.precision, engine)
    if isinstance(launch, QuantLaunch) and launch.flag:
        return ["--quantization", launch.flag]
    return []


class CommandBuilder(Protocol):
    def __call__(self, topology: Any, context: LaunchContext) -> LaunchCommand | None: ...


def flag_args(extra: Mapping[str, Any], separator: str = "-") -> list[str]:
    """A spec's `engine.args` as flags: `{a-b: 1}` -> `--a-b 1`, `True` -> bare flag; words
    joined by `separator` (TensorRT-LLM spells its flags `--a_b`)."""
    other = "_" if separator == "-" else "-"
    out: list[str] = []
    for key, value in extra.items():
        flag = key if key.startswith("--") else f"--{key.replace(other, separator)}"
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, dict):
            import json

            out += [flag, json.dumps(value, separators=(",", ":"))]
        else:
            out += [flag, str(value)]
    return out


_RUNNING = re.compile(
    rf"^(?:{'|'.join(map(re.escape, running_names()))})(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)",
    re.MULTILINE,
)


# trtllm-serve's /metrics is a long poll: it answers once 2 s pass without a new iteration
# (openai_server.py `get_stats_async(2)`), so a drain keeps one read open (up to its time
# left, capped), and an empty list must persist over several polls (other readers drain
# the same queue) before it means idle.
TRTLLM_READ_CAP_S = 30.0
TRTLLM_QUIET_S = 1.0


def running_requests(metrics_text: str) -> float:
    """Requests in flight from an engine's Prometheus text (vLLM or SGLang names)."""
    return sum(float(v) for v in _RUNNING.findall(metrics_text))


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

        `flavor` says what `/metrics` holds (None: vLLM or SGLang names). TensorRT-LLM's
        JSON list is drained by every reader and is a long poll (router/engine_metrics.py):
        a failed read is not idle, and `[]` (no iteration since the last read, which may
        have been the router's) must hold for TRTLLM_QUIET_S before the engine counts idle."""
        from controlplane.router.engine_metrics import FLAVOR_TRTLLM

        trtllm = flavor == FLAVOR_TRTLLM
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
