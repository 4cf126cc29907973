"""SGLang / vLLM command builders for every shipped topology (engine parsers: tier `engines`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.catalog import Precision
from controlplane.engines import LaunchContext, build_command, sim_command
from controlplane.engines.base import PLACEHOLDERS, LaunchCommand, flag_args
from controlplane.local.cpu import targets_cpu
from controlplane.spec import Topology, load_topology
from controlplane.spec.models import EngineKind

# TensorRT-LLM topologies (int8 / int4 built by TensorRT-LLM itself) are checked in
# test_trtllm_parsers.py; the vLLM / SGLang builders here run on the others.
TOPOLOGIES = [
    p
    for p in sorted((Path(__file__).resolve().parents[3] / "topologies").glob("*.yaml"))
    if "kind: trtllm" not in p.read_text()
]


def _with_engine(topo: Topology, kind: EngineKind) -> Topology:
    from controlplane.spec import resolve

    spec = topo.spec.model_copy(deep=True)
    spec.engine.kind = kind
    spec.engine.version = None
    spec.speculative.algorithm = None
    spec.speculative.num_steps = spec.speculative.eagle_topk = None
    spec.speculative.num_draft_tokens = None
    return resolve(spec, topo.model if spec.model is None else None)  # a model_config: as loaded


def _value(argv: tuple[str, ...], flag: str) -> str:
    assert argv.count(flag) == 1, f"{flag} appears {argv.count(flag)} times"
    return argv[argv.index(flag) + 1]


def _quant_flag(argv: tuple[str, ...]) -> str | None:
    return _value(argv, "--quantization") if "--quantization" in argv else None


def _expected_flag(topo: Topology, online_fp8: str) -> str | None:
    """A 16-bit repository served at fp8: the online flag; a local quantised checkpoint: its
    own `quant_method`; a catalog checkpoint as stored (GLM-4.5-FP8): none."""
    if topo.precision is not topo.model.weight_format:
        return online_fp8
    return topo.model.arch.quant.method if topo.model.arch.quant else None


def _commands(topo: Topology) -> list[LaunchCommand]:
    out = []
    for rank in range(topo.nodes):
        cmd = build_command(topo, LaunchContext(rank, topo.nodes, mem_fraction=0.85))
        assert cmd is not None
        out.append(cmd)
    return out


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_sglang_commands(path: Path) -> None:
    topo = _with_engine(load_topology(path), EngineKind.SGLANG)
    commands = _commands(topo)
    for rank, cmd in enumerate(commands):
        argv = cmd.argv
        assert argv[:3] == ("python", "-m", "sglang.launch_server")
        assert _value(argv, "--model-path") == topo.model.hf_repo
        assert int(_value(argv, "--tp-size")) == topo.tp * topo.dp
        assert int(_value(argv, "--context-length")) == topo.context_length
        if topo.model.tool_parser:
            assert _value(argv, "--tool-call-parser") == topo.model.tool_parser
        else:
            assert "--tool-call-parser" not in argv
        # Quantised at load (a 16-bit repository served at fp8): SGLang's online `fp8`.
        assert _quant_flag(argv) == _expected_flag(topo, "fp8")
        assert float(_value(argv, "--mem-fraction-static")) == pytest.approx(0.85)
        assert cmd.serves_http == (rank == 0)
        fp8_weights = topo.model.weight_format is Precision.FP8
        assert ("--disable-shared-experts-fusion" in argv) == fp8_weights
        if topo.kv_cache_dtype is Precision.FP8:
            assert _value(argv, "--kv-cache-dtype") == "fp8_e4m3"
        if topo.speculative is not None:
            assert _value(argv, "--speculative-algorithm") == "EAGLE"
        else:
            assert "--speculative-algorithm" not in argv
        if topo.nodes > 1:
            assert int(_value(argv, "--nnodes")) == topo.nodes
            assert int(_value(argv, "--node-rank")) == rank
        else:
            assert "--nnodes" not in argv
        if topo.ep > 1:
            assert int(_value(argv, "--ep-size")) == topo.ep
            assert _value(argv, "--moe-a2a-backend") == "deepep"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_vllm_commands(path: Path) -> None:
    topo = _with_engine(load_topology(path), EngineKind.VLLM)
    for rank, cmd in enumerate(_commands(topo)):
        argv = cmd.argv
        assert _value(argv, "--model") == topo.model.hf_repo
        assert int(_value(argv, "--tensor-parallel-size")) == topo.tp
        assert int(_value(argv, "--max-model-len")) == topo.context_length
        if targets_cpu(topo):  # vLLM's CPU build sizes KV by VLLM_CPU_KVCACHE_SPACE instead
            assert "--gpu-memory-utilization" not in argv
            assert "VLLM_CPU_KVCACHE_SPACE" in cmd.env
        else:
            assert float(_value(argv, "--gpu-memory-utilization")) == pytest.approx(0.85)
        assert ("--enable-auto-tool-choice" in argv) == bool(topo.model.tool_parser)
        # vLLM's online shorthand: every linear layer, one scale per matrix.
        assert _quant_flag(argv) == _expected_flag(topo, "fp8_per_tensor")
        if topo.speculative is not None:
            spec = json.loads(_value(argv, "--speculative-config"))
            assert spec["method"] == "mtp" and spec["num_speculative_tokens"] >= 1
        else:
            assert "--speculative-config" not in argv
        assert ("--enable-expert-parallel" in argv) == (topo.ep > 1)
        assert ("--headless" in argv) == (rank > 0)
        if topo.nodes > 1:
            assert _value(argv, "--distributed-executor-backend") == "mp"
            assert int(_value(argv, "--node-rank")) == rank


def test_placeholders_resolve() -> None:
    topo = load_topology(TOPOLOGIES[0])
    cmd = build_command(topo, LaunchContext(1, 2))
    assert cmd is not None and cmd.unresolved()
    values = {"host": "127.0.0.1", "port": "1", "dist_host": "127.0.0.1", "dist_port": "2"}
    done = cmd.resolve(values | {"python": "py"})
    assert done.unresolved() == []
    assert not any(p in " ".join(done.argv) for p in PLACEHOLDERS)


def test_sim_command_runs_on_rank_zero_only() -> None:
    topo = load_topology(TOPOLOGIES[0])
    cmd = sim_command(topo, LaunchContext(0, 2))
    assert cmd is not None
    spec = json.loads(_value(cmd.argv, "--spec-json"))
    assert spec["gpus"]["count"] == topo.gpus_per_replica
    assert sim_command(topo, LaunchContext(1, 2)) is None


def test_extra_args_become_flags() -> None:
    assert flag_args({"enable-torch-compile": True, "x_y": 3, "off": False}) == [
        "--enable-torch-compile",
        "--x-y",
        "3",
    ]


def test_trtllm_spells_extra_flags_with_underscores() -> None:
    assert flag_args({"max-beam-width": 2, "enable_chunked_context": True}, separator="_") == [
        "--max_beam_width",
        "2",
        "--enable_chunked_context",
    ]
