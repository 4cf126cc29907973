"""The engine interface: build the launch command, start, health, metrics, drain, stop.

Command builders (`sglang.py`, `vllm.py`, `trtllm.py`, the simulator's in `simulator.py`) are pure
functions `build_command(topology, context) -> LaunchCommand | None` (None: this node rank
runs no process of its own). Addresses that only exist at run time (the node's host, a free
port, rank 0's rendezvous address) appear in the argv as placeholders that
`LaunchCommand.resolve` fills in, so a plan's commands are stable and diffable.
`process.EngineProcess` runs one resolved command and speaks to it over HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from controlplane.catalog.engine_metrics import running_names
from controlplane.catalog.formats import QuantLaunch, quant_launch

# Placeholders a launch command may hold until the worker that starts it knows the values.
HOST = "{host}"  # the address this rank's HTTP server binds (rank 0 only)
PORT = "{port}"  # a free port on this rank's node for the HTTP server
DIST_HOST = "{dist_host}"  # rank 0's address for the collective rendezvous
DIST_PORT = "{dist_port}"  # a free port on rank 0's node for that rendezvous
PYTHON = "{python}"  # the interpreter running glmctl (the simulator ships with it)
# A free port on rank 0's node for a PD replica's KV handshake (SGLang's bootstrap server,
# vLLM's NIXL side channel): many replicas share a host, so no fixed port.
BOOTSTRAP_PORT = "{bootstrap_port}"
KV_PORT = "{kv_port}"  # first of the KV-event PUB ports, one per DP rank (kv_events_args.py)
KV_REPLAY_PORT = "{kv_replay_port}"  # first of the KV-event replay ports
PLACEHOLDERS = (HOST, PORT, DIST_HOST, DIST_PORT, PYTHON, BOOTSTRAP_PORT, KV_PORT, KV_REPLAY_PORT)


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


def running_requests(metrics_text: str) -> float:
    """Requests in flight from an engine's Prometheus text (vLLM or SGLang names)."""
    return sum(float(v) for v in _RUNNING.findall(metrics_text))
