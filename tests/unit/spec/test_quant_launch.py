"""Quantisation is one truth from validation to launch: flags, refusals, sizing.

Each case resolves a spec and builds its command: the `--quantization` value in the argv
must be the one the format needs, the scheme capacity sizes must be the one that flag
loads, and what an engine cannot load is refused at validation with that engine's reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.capacity.weights import checkpoint_bytes
from controlplane.catalog import Precision, find_model
from controlplane.engines import LaunchContext, build_command
from controlplane.errors import SpecError
from controlplane.spec import load_topology, parse_spec, resolve
from tests.unit.capacity.test_quant_checkpoints import TINY_CHATGLM2

SMALL = ("chatglm2-6b", "glm-4-9b-chat", "glm-edge-4b-chat", "glm-edge-1.5b-chat")


def _topology(model: str, precision: str, engine: str):  # type: ignore[no-untyped-def]
    text = f"model: {model}\nprecision: {precision}\ngpus: 1xL40S\nengine: {engine}\n"
    return resolve(parse_spec(text, default_name="a"))


def _quant_flag(argv: tuple[str, ...]) -> str | None:
    return argv[argv.index("--quantization") + 1] if "--quantization" in argv else None


@pytest.mark.parametrize("model", SMALL)
@pytest.mark.parametrize(("engine", "flag"), [("vllm", "fp8_per_tensor"), ("sglang", "fp8")])
def test_fp8_is_quantised_at_load_with_the_engines_flag(model: str, engine: str, flag: str) -> None:
    topo = _topology(model, "fp8", engine)
    argv = build_command(topo, LaunchContext()).argv  # type: ignore[union-attr]
    assert _quant_flag(argv) == flag
    assert topo.model.hf_repo in argv  # the 16-bit repository, quantised by the engine
    # Sized as loaded: FP8 linears, 16-bit embedding / output layer / norms / biases, and no
    # 128-block scales (those belong to stored block-FP8 checkpoints).
    scheme = topo.model.arch.quant
    assert scheme is not None and scheme.float_weights and scheme.scale_bytes_per_value == 0.0
    blockwise = checkpoint_bytes(find_model(model).arch, Precision.FP8)  # type: ignore[union-attr]
    assert checkpoint_bytes(topo.model.arch, Precision.FP8) < blockwise


@pytest.mark.parametrize("model", SMALL)
@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_16bit_launches_without_a_quantization_flag(model: str, engine: str) -> None:
    topo = _topology(model, "bf16", engine)
    assert _quant_flag(build_command(topo, LaunchContext()).argv) is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("engine", "precision", "says"),
    [
        ("vllm", "int8", "MoE experts only"),
        ("sglang", "int8", "w8a8_int8"),
        ("vllm", "int4", "int4 at load"),
        ("sglang", "int4", "int4 at load"),
    ],
)
def test_int_precisions_of_hf_repositories_are_refused_with_the_engines_reason(
    engine: str, precision: str, says: str
) -> None:
    with pytest.raises(SpecError) as err:
        _topology("chatglm2-6b", precision, engine)
    text = str(err.value)
    assert says in text and "model_config" in text and "To fix" in text
    assert "quantization_bit" in text  # THUDM's own int4 repositories are not loadable


def test_the_simulator_still_sizes_int4() -> None:
    topo = _topology("chatglm2-6b", "int4", "sim")
    assert topo.precision is Precision.INT4


@pytest.mark.parametrize("model", SMALL)
def test_the_simulator_sizes_fp8_as_the_engines_load_it(model: str) -> None:
    # `engine: sim` stands in for SGLang: the same per-tensor FP8 scheme, the same bytes.
    sim, real = _topology(model, "fp8", "sim"), _topology(model, "fp8", "sglang")
    assert sim.model.arch.quant == real.model.arch.quant
    sized = checkpoint_bytes(sim.model.arch, Precision.FP8)
    assert sized == checkpoint_bytes(real.model.arch, Precision.FP8)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_chatglm_6b_v1_is_refused_on_both_engines(engine: str) -> None:
    with pytest.raises(SpecError) as err:
        _topology("chatglm-6b", "fp16", engine)
    assert "ChatGLM2/3 layout" in str(err.value) and "chatglm2-6b" in str(err.value)
    assert _topology("chatglm-6b", "fp16", "sim").model.name == "chatglm-6b"


def test_a_local_chatglm_v1_config_is_refused_too(tmp_path: Path) -> None:
    v1 = {
        "architectures": ["ChatGLMModel"],
        "model_type": "chatglm",
        "num_layers": 2,
        "vocab_size": 1024,
        "hidden_size": 256,
        "inner_hidden_size": 1024,  # ChatGLM-6B v1's key
        "num_attention_heads": 4,
        "max_sequence_length": 2048,
        "position_encoding_2d": True,
    }
    (tmp_path / "config.json").write_text(json.dumps(v1))
    (tmp_path / "t.yaml").write_text("model_config: .\ngpus: 1xL40S\nengine: vllm\n")
    with pytest.raises(SpecError, match="ChatGLM2/3 layout"):
        load_topology(tmp_path / "t.yaml")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_local_awq_checkpoint_launches_with_awq_and_is_sized_as_stored(
    tmp_path: Path, engine: str
) -> None:
    quant = {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True}
    (tmp_path / "config.json").write_text(
        json.dumps({**TINY_CHATGLM2, "quantization_config": quant})
    )
    (tmp_path / "t.yaml").write_text(f"model_config: .\ngpus: 1xL40S\nengine: {engine}\n")
    topo = load_topology(tmp_path / "t.yaml")
    argv = build_command(topo, LaunchContext()).argv  # type: ignore[union-attr]
    assert topo.precision is Precision.INT4 and _quant_flag(argv) == "awq"
    assert str(tmp_path) in argv
    assert topo.model.arch.quant is not None and topo.model.arch.quant.method == "awq"


def test_stored_block_fp8_keeps_its_command() -> None:
    # GLM-4.5-FP8 stores its format; the engines read it from config.json (no flag).
    topo = resolve(parse_spec("model: glm-4.5\nprecision: fp8\ngpus: 8xH200\nengine: vllm\n"))
    assert _quant_flag(build_command(topo, LaunchContext()).argv) is None  # type: ignore[union-attr]


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_glm_edge_runs_through_the_transformers_backend_with_a_warning(engine: str) -> None:
    topo = _topology("glm-edge-4b-chat", "bf16", engine)
    assert any("Transformers backend" in w for w in topo.warnings)
    assert not _topology("chatglm2-6b", "fp16", engine).warnings
