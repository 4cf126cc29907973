"""SGLang launch commands (targets SGLang 0.5.23; flags checked against its server_args.py).

One process per node: `--nnodes/--node-rank/--dist-init-addr`, rank 0 serves HTTP.
Version notes (0.5.23, shared/reference/real-engines-on-cpu.md): `--enable-ep-moe` is gone
(expert parallelism is `--ep-size` with `--moe-a2a-backend deepep`); `--enable-dp-attention
--dp-size N` is deprecated in favour of `--attn-dp-size N`, where `--tp-size` counts every
GPU of the attention-DP group.
Shutdown: SGLang 0.5.23 has no shutdown-timeout option. On SIGTERM its tokenizer manager
drains by itself (`sigterm_watchdog`: waits, checking every 5 s, until no request remains;
only the `SGL_FORCE_SHUTDOWN` environment variable makes it exit at once), so its drain
has no bound of its own: glmctl bounds it (the replica drains for the drain timeout, then
the engine gets SIGTERM and SIGKILL `STOP_S` later, autoscale/drain.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.catalog import Precision
from controlplane.engines.base import (
    DIST_HOST,
    DIST_PORT,
    HOST,
    PORT,
    LaunchCommand,
    LaunchContext,
    ServingFlags,
    flag_args,
    serving_args,
)
from controlplane.spec.engine_checks import SGLANG_SPEC
from controlplane.spec.models import SpeculativeAlgorithm

if TYPE_CHECKING:
    from controlplane.spec import Topology

# Written once, in the engine's spec rules (resolve fills it into `engine.version`).
TARGET_VERSION = SGLANG_SPEC.default_version
# SGLang's FP8 KV dtype name (server_args.py `--kv-cache-dtype` choices).
KV_DTYPE = {Precision.FP8: "fp8_e4m3"}
FLAGS = ServingFlags(
    module="sglang.launch_server",
    model="--model-path",
    context_length="--context-length",
    max_seqs="--max-running-requests",
    mem_fraction="--mem-fraction-static",
    chunked_prefill="--chunked-prefill-size",
    kv_cache_dtype=KV_DTYPE,
    engine="sglang",
)
# MTP drafts through SGLang's EAGLE worker; NEXTN is its alias for next-n layers.
SPEC_ALGORITHM = {SpeculativeAlgorithm.EAGLE: "EAGLE", SpeculativeAlgorithm.MTP: "NEXTN"}


def build_command(topology: Topology, context: LaunchContext) -> LaunchCommand:
    """`python -m sglang.launch_server ...` for one node rank of one replica."""
    spec = topology.spec
    argv = serving_args(topology, context, FLAGS, _parallel_args(topology))
    argv += _speculative_args(topology)
    if topology.model.weight_format is Precision.FP8 and topology.arch.is_moe:
        # The model card's FP8 command: the fused shared expert breaks block-FP8 scales.
        argv.append("--disable-shared-experts-fusion")
    argv += _parser_args(topology)
    argv += ["--enable-metrics", "--host", HOST, "--port", PORT]
    argv += _multinode_args(context)
    argv += flag_args(spec.engine.args)
    return LaunchCommand(tuple(argv), dict(spec.engine.env), serves_http=context.node_rank == 0)


def _multinode_args(context: LaunchContext) -> list[str]:
    if context.nnodes <= 1:
        return []
    return [
        "--nnodes",
        str(context.nnodes),
        "--node-rank",
        str(context.node_rank),
        "--dist-init-addr",
        f"{DIST_HOST}:{DIST_PORT}",
    ]


def _parallel_args(topology: Topology) -> list[str]:
    par = topology.spec.parallelism
    if par.dp_attention and topology.dp > 1:
        # Attention runs data-parallel inside the TP group: tp-size is the whole group.
        args = ["--tp-size", str(topology.tp * topology.dp), "--attn-dp-size", str(topology.dp)]
    else:
        args = ["--tp-size", str(topology.tp)]
        if topology.dp > 1:
            args += ["--dp-size", str(topology.dp)]
    if topology.pp > 1:
        args += ["--pp-size", str(topology.pp)]
    if topology.ep > 1:
        args += ["--ep-size", str(topology.ep), "--moe-a2a-backend", "deepep"]
    return args


def _speculative_args(topology: Topology) -> list[str]:
    spec = topology.speculative
    if spec is None or spec.algorithm is None:
        return []
    return [
        "--speculative-algorithm",
        SPEC_ALGORITHM.get(spec.algorithm, "EAGLE"),
        "--speculative-num-steps",
        str(spec.num_steps),
        "--speculative-eagle-topk",
        str(spec.eagle_topk),
        "--speculative-num-draft-tokens",
        str(spec.num_draft_tokens),
    ]


def _parser_args(topology: Topology) -> list[str]:
    args: list[str] = []
    if topology.model.tool_parser:
        args += ["--tool-call-parser", topology.model.tool_parser]
    if topology.model.reasoning_parser:
        args += ["--reasoning-parser", topology.model.reasoning_parser]
    return args
