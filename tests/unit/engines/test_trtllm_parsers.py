"""TensorRT-LLM plans for every cell of its GLM support matrix, parsed by its own parsers.

The parsers are rebuilt from TensorRT-LLM's argument definitions without importing
tensorrt_llm (it needs CUDA): see trtllm_argdefs.py. How the sources were obtained: a git
mirror of NVIDIA/TensorRT-LLM was refused (2.5 GB, over this machine's 500 MB limit), so each
file was read through the code search index, which stores files at the commits below (one
per file, the index's recent versions of the main line; tensorrt_llm/version.py there, at
b35ac1b, says "1.2.0rc2", hence the data folder's name; that all five commits belong to one
release tag could not be checked). Recorded in tests/data/trtllm/1.2.0rc2/*.json:
- examples/models/core/glm-4-9b/convert_checkpoint.py @6e1dd9c (`parse_arguments`)
- examples/quantization/quantize.py @c8c6df0 (the `__main__` parser)
- tensorrt_llm/commands/build.py @65f1d15 (`parse_arguments`) with the plugin flags of
  tensorrt_llm/plugin/plugin.py @c20322f (`add_plugin_argument`)
- tensorrt_llm/commands/serve.py @00209af (the `serve` click command)
The cells below are written out from the READMEs' support matrices (examples/chatglm
@0ab9d17, examples/models/core/glm-4-9b @0193dbd), not read from glmctl's matrix module.
"""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.engines import LaunchContext, build_command
from controlplane.engines import trtllm as builder
from controlplane.errors import SpecError
from controlplane.spec import Topology, parse_spec, resolve
from tests.unit.engines.trtllm_argdefs import ParseError, parse_argparse, parse_click

VERSION = "1.2.0rc2"
RUNTIME = {"host": "127.0.0.1", "port": "8000"}
# (model, precision, method) the matrices mark Y; context within each model's maximum.
CELLS = [
    ("chatglm2-6b", "fp16", None),
    ("chatglm2-6b", "bf16", None),
    ("chatglm2-6b", "int8", "weight_only"),
    ("chatglm2-6b", "int4", "weight_only"),
    ("chatglm2-6b", "int8", "smoothquant"),
    ("chatglm2-6b", "int4", "awq"),
    ("chatglm2-6b", "fp8", None),
    ("chatglm2-6b-32k", "fp16", None),
    ("chatglm2-6b-32k", "int8", "weight_only"),
    ("chatglm2-6b-32k", "int4", "weight_only"),
    ("chatglm2-6b-32k", "int4", "awq"),
    ("chatglm2-6b-32k", "fp8", None),
    ("chatglm-6b", "fp16", None),
    ("chatglm-6b", "int8", "weight_only"),
    ("chatglm-6b", "int4", "weight_only"),
    ("glm-4-9b", "bf16", None),
    ("glm-4-9b", "int8", "weight_only"),
    ("glm-4-9b", "int4", "weight_only"),
]
CASES = [(*cell, tp) for cell in CELLS for tp in (1, 2)]


def topology(model: str, precision: str, method: str | None, tp: int, **extra: Any) -> Topology:
    engine: dict[str, Any] = {"kind": "trtllm"}
    if method:
        engine["trtllm_quant"] = method
    data = {
        "model": model,
        "precision": precision,
        "engine": engine,
        "gpus": f"{tp}xL40S",
        "context_length": 2048,
        "max_num_seqs": 16,
        **extra,
    }
    import yaml

    return resolve(parse_spec(yaml.safe_dump(data), default_name="trtllm-case"))


def rank_steps(topo: Topology) -> list[tuple[str, ...]]:
    """The rank's three commands, read back from the script it runs."""
    command = build_command(topo, LaunchContext(0, 1, mem_fraction=0.9)).resolve(RUNTIME)
    assert command.argv[:2] == ("sh", "-c")
    assert not command.unresolved()
    return builder.script_steps(command.argv[2])


@pytest.mark.parametrize(("model", "precision", "method", "tp"), CASES)
def test_matrix_cell_parses(model: str, precision: str, method: str | None, tp: int) -> None:
    topo = topology(model, precision, method, tp)
    convert, build, serve = rank_steps(topo)
    script = convert[1].rsplit("/", 1)[-1]
    assert script in ("convert_checkpoint.py", "quantize.py")
    args = parse_argparse(VERSION, script.removesuffix(".py"), list(convert[2:]))
    assert args.tp_size == tp and args.output_dir == build[build.index("--checkpoint_dir") + 1]
    if script == "quantize.py":
        assert args.qformat == {"fp8": "fp8", "int4": "int4_awq"}[precision]
    elif method == "weight_only":
        assert args.use_weight_only and args.weight_only_precision == precision
    elif method == "smoothquant":
        assert args.smoothquant == 0.5 and args.per_channel and args.per_token
    else:
        assert not args.use_weight_only and args.smoothquant is None
        assert args.dtype == {"fp16": "float16", "bf16": "bfloat16"}[precision]
    built = parse_argparse(VERSION, "trtllm_build", list(build[1:]))
    assert (built.max_batch_size, built.max_seq_len, built.workers) == (16, 2048, tp)
    assert (built.kv_cache_type, built.remove_input_padding) == ("paged", "enable")
    assert built.gpt_attention_plugin == "auto"
    fmha = "disable" if model == "chatglm-6b" else "enable"
    assert built.context_fmha == built.use_paged_context_fmha == fmha
    served = parse_click(VERSION, "trtllm_serve", list(serve[1:]))
    assert served["model"] == topo.served_model_name and served["backend"] == "tensorrt"
    assert served["tensor_parallel_size"] == tp and served["max_batch_size"] == 16
    assert served["trust_remote_code"] and served["port"] == 8000


def _bad(name: str, argv: list[str]) -> None:
    with pytest.raises(ParseError):
        if name == "trtllm_serve":
            parse_click(VERSION, name, argv)
        else:
            parse_argparse(VERSION, name, argv)


def test_parsers_refuse_bad_commands() -> None:
    """Negative controls: each parser says no to an unknown flag, a bad choice, a bad type."""
    convert, build, serve = rank_steps(topology("chatglm2-6b", "int8", "weight_only", 2))
    c, b, s = list(convert[2:]), list(build[1:]), list(serve[1:])
    parse_click(VERSION, "trtllm_serve", [*s, "--backend", "trt"])  # serve.py's alias passes
    _bad("convert_checkpoint", [*c, "--weight_only_precision", "int2"])
    _bad("convert_checkpoint", [*c, "--qformat", "fp8"])  # a quantize.py flag
    _bad("quantize", ["--model_dir", "m", "--qformat", "int3_awq"])
    _bad("trtllm_build", [*b, "--tp_size", "2"])  # TP is set at conversion, not at build
    _bad("trtllm_build", [*b, "--max_batch_size", "sixteen"])
    _bad("trtllm_build", [*b, "--kv_cache_type", "virtual"])
    _bad("trtllm_build", [*b, "--gemm_plugin", "int4"])
    _bad("trtllm_build", [*b, "--log_level", "info"])  # run-time choices cannot be checked
    _bad("trtllm_serve", [*s, "--backend", "onnx"])
    _bad("trtllm_serve", [*s, "--served-model-name", "glm"])
    _bad("trtllm_serve", [*s, "--tp_size", "two"])
    _bad("trtllm_serve", [*s, "--kv_cache_free_gpu_memory_fraction", "most"])


# Cells the matrices leave empty, with the column the refusal must name.
REFUSED = [
    ("chatglm2-6b-32k", "int8", "smoothquant", "SmoothQuant (SQ)"),
    ("chatglm-6b", "fp8", None, "FP8"),
    ("chatglm-6b", "int4", "awq", "AWQ"),
    ("chatglm-6b", "int8", "smoothquant", "SmoothQuant (SQ)"),
    ("glm-4-9b", "fp8", None, "FP8"),
    ("glm-4-9b", "int4", "awq", "AWQ"),
]


@pytest.mark.parametrize(("model", "precision", "method", "column"), REFUSED)
def test_refused_cell_gives_the_matrix_reason(
    model: str, precision: str, method: str | None, column: str
) -> None:
    with pytest.raises(SpecError) as info:
        topology(model, precision, method, 1)
    text = str(info.value)
    assert "support matrix" in text and column in text and "To fix:" in text
    assert "int8 weight_only" in text  # the fix names a cell that works


def test_pipeline_parallel_is_refused_with_the_matrix_reason() -> None:
    with pytest.raises(SpecError) as info:
        topology("chatglm2-6b", "fp16", None, 2, parallelism={"tensor": 1, "pipeline": 2})
    text = str(info.value)
    assert "pipeline parallelism (PP)" in text and "Pipeline parallelism is not supported" in text
    assert "To fix:" in text
