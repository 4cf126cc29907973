"""The CPU target of the vLLM path (controlplane/local/cpu.py): pure settings."""

from __future__ import annotations

import math

import pytest
import yaml

from controlplane.engines import LaunchContext, build_command
from controlplane.engines.base import PYTHON
from controlplane.engines.vllm import TARGET_VERSION
from controlplane.local.cpu import (
    GPU_ONLY_FLAGS,
    MIN_KV_CACHE_GIB,
    cpu_launch_prefix,
    cpu_overrides,
    drop_gpu_only_flags,
    kv_cache_gib,
    targets_cpu,
)
from controlplane.local.launch import LAUNCH_MODULE, split_launch
from controlplane.spec import Topology, load_topology, parse_spec, resolve
from tests.conftest import TOPOLOGIES

TINY = TOPOLOGIES / "tiny-glm45-cpu.yaml"


def _cpu_topology(**changes: object) -> Topology:
    data = yaml.safe_load(TINY.read_text())
    data.update(changes)
    return resolve(parse_spec(yaml.safe_dump(data), default_name="cpu-test"))


def test_only_the_cpu_device_targets_cpu() -> None:
    assert targets_cpu(load_topology(TINY))
    assert not targets_cpu(load_topology(TOPOLOGIES / "glm45-fp8-vllm.yaml"))


def test_kv_space_is_derived_from_the_architecture() -> None:
    # GLM-4.5-Air on the CPU at its full context: K and V of 8 heads x 128 over 46 layers
    # plus the MTP layer, 2 bytes each (bf16), for 131072 tokens x 8 sequences.
    topo = _cpu_topology(model="glm-4.5-air", context_length=131072, max_num_seqs=8)
    arch = topo.arch
    per_token = 2 * arch.num_kv_heads * arch.head_dim * (arch.num_layers + 1) * 2
    assert kv_cache_gib(topo) == math.ceil(per_token * 131072 * 8 / 1024**3)
    assert kv_cache_gib(load_topology(TINY)) == MIN_KV_CACHE_GIB  # tiny: far below 1 GiB


def test_overrides_one_rank_in_process() -> None:
    args, env = cpu_overrides(load_topology(TINY))
    assert args[args.index("--distributed-executor-backend") + 1] == "uni"
    assert "--enforce-eager" in args and args[args.index("--dtype") + 1] == "bfloat16"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["HF_HUB_OFFLINE"] == "1"


def test_several_ranks_use_the_multiprocessing_executor() -> None:
    topo = _cpu_topology(gpus={"type": "CPU", "count": 2, "per_node": 2})
    args, _ = cpu_overrides(topo)
    assert args[args.index("--distributed-executor-backend") + 1] == "mp"


@pytest.mark.parametrize(
    ("argv", "kept"),
    [
        (["--a", "--gpu-memory-utilization", "0.9", "--b"], ["--a", "--b"]),
        (["--gpu-memory-utilization=0.9", "--cpu-offload-gb", "4"], []),
        (["--x", "1"], ["--x", "1"]),
    ],
)
def test_drop_gpu_only_flags(argv: list[str], kept: list[str]) -> None:
    assert drop_gpu_only_flags(argv) == kept


def test_cpu_command_runs_through_the_venv_launcher() -> None:
    topo = load_topology(TINY)
    command = build_command(topo, LaunchContext(mem_fraction=0.9))
    assert command is not None
    launcher, engine = split_launch(list(command.argv))
    assert launcher == cpu_launch_prefix(topo, PYTHON, "vllm", TARGET_VERSION)[:-1]
    assert launcher[1:3] == ["-m", LAUNCH_MODULE]
    assert launcher[launcher.index("--local-model") + 1] == topo.model.name
    assert engine[:3] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    assert not set(GPU_ONLY_FLAGS) & set(engine)
    assert command.env["VLLM_CPU_KVCACHE_SPACE"] == str(kv_cache_gib(topo))
