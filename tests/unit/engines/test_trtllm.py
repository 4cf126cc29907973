"""TensorRT-LLM builders: the cache key, the rank script, refusals and the memory rule."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.capacity import layout_of
from controlplane.capacity.memory import replica_memory
from controlplane.capacity.trtllm_rules import runtime_bytes
from controlplane.engines import LaunchContext, build_command, target_version
from controlplane.engines import trtllm as builder
from controlplane.errors import SpecError
from controlplane.spec import Topology, parse_spec, resolve
from controlplane.spec.models import EngineKind

BASE: dict[str, Any] = {
    "model": "chatglm2-6b",
    "precision": "int8",
    "engine": {"kind": "trtllm"},
    "gpus": "1xL40S",
    "context_length": 4096,
    "max_num_seqs": 16,
}


def topo(**changes: Any) -> Topology:
    data = {**BASE, **changes}
    return resolve(parse_spec(yaml.safe_dump(data), default_name="trt"))


def key(t: Topology, context: LaunchContext | None = None) -> str:
    return builder.steps(t, context or LaunchContext()).cache_key


def test_cache_key_is_stable_and_names_the_build() -> None:
    first, again = key(topo()), key(topo())
    assert first == again
    assert first.startswith("chatglm2-6b-int8-weight_only-tp1-") and len(first.split("-")[-1]) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"precision": "int4"},
        {"engine": {"kind": "trtllm", "trtllm_quant": "smoothquant"}},
        {"engine": {"kind": "trtllm", "version": "1.1.0"}},
        {"engine": {"kind": "trtllm", "chunked_prefill": 2048}},
        {"gpus": "2xL40S"},
        {"context_length": 8192},
        {"max_num_seqs": 8},
        {"model": "chatglm2-6b-32k"},
    ],
)
def test_cache_key_changes_with_what_the_engine_is_built_from(change: dict[str, Any]) -> None:
    assert key(topo(**change)) != key(topo())


def test_cache_key_ignores_serving_only_options() -> None:
    """Serve flags (memory fraction, extra serve args, replicas) reuse the built engine."""
    base = key(topo())
    assert key(topo(), LaunchContext(mem_fraction=0.5)) == base
    assert key(topo(engine={"kind": "trtllm", "args": {"num_postprocess_workers": 2}})) == base
    assert key(topo(replicas=2)) == base
    assert key(topo(), LaunchContext(model_path="/models/chatglm2")) != base  # another source


def test_script_builds_once_then_serves(tmp_path: Path) -> None:
    """The rank script, run by sh with stub tools: the first start converts and builds,
    the second finds `engine/config.json` in the cache folder and only serves."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    stubs = {
        "python3": 'echo "convert $*" >> "$LOG"; mkdir -p checkpoint',
        "trtllm-build": 'echo "build $*" >> "$LOG"; mkdir -p engine; touch engine/config.json',
        "trtllm-serve": 'echo "serve $*" >> "$LOG"',
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    command = build_command(topo(), LaunchContext(mem_fraction=0.9))
    resolved = command.resolve({"host": "127.0.0.1", "port": "8000"})
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LOG": str(log),
        "GLMCTL_TRTLLM_CACHE": str(tmp_path / "cache"),
    }
    for _ in range(2):
        subprocess.run(list(resolved.argv), env=env, check=True, timeout=30)
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    assert calls == ["convert", "build", "serve", "serve"]
    folder = tmp_path / "cache" / key(topo(), LaunchContext(mem_fraction=0.9))
    assert (folder / "engine" / "config.json").exists() and not (folder / "checkpoint").exists()
    # trtllm-serve names the model by its folder: the served name links to the engine.
    assert (folder / "chatglm2-6b").resolve() == (folder / "engine").resolve()
    assert "serve chatglm2-6b --backend tensorrt" in log.read_text()
    assert "/app/tensorrt_llm/examples/models/core/glm-4-9b/convert_checkpoint.py" in (
        log.read_text()
    )


def test_target_version_and_simulated_flavour() -> None:
    t = topo()
    assert target_version(EngineKind.TRTLLM) == builder.TARGET_VERSION == t.spec.engine.version
    assert t.spec.simulation.flavor is EngineKind.VLLM


def test_sixteen_bit_and_fp8_use_their_converters() -> None:
    fp16 = builder.steps(topo(precision="fp16"), LaunchContext())
    assert fp16.convert[1] == builder.CONVERT_SCRIPT and "--use_weight_only" not in fp16.convert
    fp8 = builder.steps(topo(precision="fp8"), LaunchContext())
    assert fp8.convert[1] == builder.QUANTIZE_SCRIPT
    assert fp8.convert[fp8.convert.index("--kv_cache_dtype") + 1] == "fp8"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"model": "glm-4.5-air", "precision": "bf16"}, ["not in TensorRT-LLM", "engine: vllm"]),
        (
            {"engine": {"kind": "vllm", "trtllm_quant": "awq"}},
            ["`trtllm_quant` chooses TensorRT-LLM", "engine.kind: trtllm"],
        ),
        (
            {"precision": "fp16", "engine": {"kind": "trtllm", "trtllm_quant": "awq"}},
            ["does not apply to precision fp16"],
        ),
        (
            {"model": "chatglm2-6b-32k", "context_length": 32768, "max_num_seqs": 4},
            ["<= 78398", "lower `max_num_seqs` to 2"],
        ),
        ({"kv_cache_dtype": "fp8"}, ["no FP8 KV cache", "precision: fp8"]),
        ({"gpus": {"type": "L40S", "count": 2, "nodes": 2}}, ["mpirun", "one node"]),
        ({"gpus": {"type": "CPU", "count": 1, "per_node": 1}}, ["NVIDIA GPUs only"]),
        ({"precision": "fp8", "gpus": "1xA100-80G"}, ["FP8 tensor cores", "precision: int8"]),
    ],
)
def test_refusals_say_why_and_what_works(changes: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        topo(**changes)
    text = str(info.value)
    assert "To fix:" in text
    for word in words:
        assert word in text


def test_kv_budget_is_the_fraction_of_memory_free_after_weights() -> None:
    """KV = 0.9 x (GPU - not visible - runtime - weights), from serve.py's default."""
    t = topo()
    memory = replica_memory(layout_of(t))
    stage = memory.stages[0]
    gpu = t.gpu
    free_after = gpu.memory_bytes - (gpu.memory_bytes - gpu.torch_total_bytes)
    free_after -= runtime_bytes(layout_of(t)) + stage.weights.total
    assert memory.budget.mem_fraction == 0.9
    assert stage.kv_pool_bytes == pytest.approx(0.9 * free_after)
    half = replica_memory(layout_of(topo(engine={"kind": "trtllm", "mem_fraction": 0.45})))
    assert half.stages[0].kv_pool_bytes == pytest.approx(stage.kv_pool_bytes / 2)


def test_weights_follow_the_built_format() -> None:
    """int8 < fp16; AWQ's group scales cost more than weight-only int4's per-channel ones."""

    def weights(**changes: Any) -> float:
        return replica_memory(layout_of(topo(**changes))).stages[0].weights.total

    fp16, int8 = weights(precision="fp16"), weights(precision="int8")
    wo4 = weights(precision="int4")
    awq = weights(precision="int4", engine={"kind": "trtllm", "trtllm_quant": "awq"})
    assert wo4 < int8 < fp16 and wo4 < awq < int8


def test_served_name_is_the_engine_link_unless_it_cannot_be_a_folder() -> None:
    named = builder.steps(topo(served_model_name="glm-small"), LaunchContext())
    assert named.served_name == "glm-small" and "ln -sfn engine glm-small" in builder.script(named)
    slashed = builder.steps(topo(served_model_name="thudm/chatglm2"), LaunchContext())
    assert slashed.served_name == "engine" and "ln -sfn" not in builder.script(slashed)
    assert named.cache_key.rsplit("-", 1)[1] == slashed.cache_key.rsplit("-", 1)[1]


def test_layout_search_offers_only_what_trtllm_runs_and_agrees_with_the_full_model() -> None:
    """No PP and no multi-node layout; the fast check answers as the per-stage model does."""
    from controlplane.capacity.fastcheck import FastCheck
    from controlplane.capacity.search import apply_shape, search, shapes_for

    base = layout_of(topo(max_num_seqs=64, context_length=32768))
    found = search(base, range(1, 17))
    assert found and all(c.layout.pp == 1 and c.layout.nodes == 1 for c in found)
    assert {c.layout.tp for c in found} >= {2, 4, 8}
    check = FastCheck(base)
    for gpus in (1, 2, 4, 8):
        for shape in shapes_for(base, gpus):
            assert check.fits(shape) == replica_memory(apply_shape(base, shape)).fits, shape
