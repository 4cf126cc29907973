"""TensorRT-LLM launch commands: convert the checkpoint, build the engine, serve it.

Targets TensorRT-LLM 1.2 (tensorrt_llm/version.py "1.2.0rc2"); flags checked against its
own argument definitions in tests/unit/engines/test_trtllm_parsers.py (which says which
commit of each file):
- conversion: examples/models/core/glm-4-9b/convert_checkpoint.py (the GLM converter for
  every ChatGLM generation, `--chatglm_version`) for 16-bit, weight-only and SmoothQuant;
  examples/quantization/quantize.py (`--qformat fp8 | int4_awq`) for FP8 and AWQ, as the
  GLM README does;
- build: `trtllm-build` (tensorrt_llm/commands/build.py, plugin flags from
  tensorrt_llm/plugin/plugin.py): the in-flight batching engine of the README (GPT
  attention plugin, paged KV cache, packed input, context FMHA where the matrix has it);
- serve: `trtllm-serve ENGINE --backend tensorrt` (tensorrt_llm/commands/serve.py). With
  `--tp_size N` on one node the LLM API spawns its N ranks itself (executor/proxy.py
  `MpiPoolSession(n_workers=model_world_size)` when not started under mpirun); several
  nodes need `mpirun ... trtllm-llmapi-launch`, which glmctl does not start (resolve
  refuses them).

Load signals: trtllm-serve answers `GET /metrics` with the executor's iteration stats as
JSON (router/engine_metrics.py reads them). The TensorRT backend always records them
(serve/openai_server.py @00057725: "tensorrt backend ... always has iter stats enabled"),
into a buffer of `iter_stats_max_iterations` entries (llmapi/llm_args.py `BaseLlmArgs`,
None: the executor's default; every version of that file the code index returned, from
@fcd3f31 on, has it there). The script pins that buffer in an `--extra_llm_api_options`
file, so the router's signal does not hang on a default. Not written there, on purpose:
`enable_iter_perf_stats` is a `TorchLlmArgs` field (PyTorch backend) and `BaseLlmArgs`
forbids extra keys, so the TensorRT backend would refuse to start; `return_perf_metrics`
only adds `/prometheus/metrics` (per-request histograms at this version, no running or
waiting gauges) and, in later versions, a second reader of the same stats queue.

One node rank runs `sh -c SCRIPT`: in the cache folder of the build's content hash it
converts and builds when `engine/config.json` is missing (under `flock`, so replicas on one
node build once), then `exec`s the server. The hash covers the TensorRT-LLM version, the
model source and every conversion and build flag, so a changed option is a new folder and
an unchanged one reuses the engine. The model source is hashed by name: a local folder whose
files change needs its cache folder removed.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.catalog import Precision
from controlplane.catalog import trtllm_matrix as matrix
from controlplane.engines.base import HOST, PORT, LaunchCommand, LaunchContext, flag_args
from controlplane.spec.engine_checks import TRTLLM_SPEC

if TYPE_CHECKING:
    from controlplane.spec import Topology

# Written once, in the engine's spec rules (resolve fills it into `engine.version`).
TARGET_VERSION = TRTLLM_SPEC.default_version
# The NGC release container keeps the examples here; TRTLLM_EXAMPLES overrides it.
EXAMPLES_DEFAULT = "/app/tensorrt_llm/examples"
EXAMPLES = "$TRTLLM_EXAMPLES"
CONVERT_SCRIPT = f"{EXAMPLES}/models/core/glm-4-9b/convert_checkpoint.py"
QUANTIZE_SCRIPT = f"{EXAMPLES}/quantization/quantize.py"
CACHE_DEFAULT = "$HOME/.cache/glmctl/trtllm"  # GLMCTL_TRTLLM_CACHE overrides it
CHECKPOINT_DIR, ENGINE_DIR = "checkpoint", "engine"  # inside the cache folder
STATS_OPTIONS = "stats.yaml"  # the `--extra_llm_api_options` file, beside engine/
ITER_STATS_MAX_ITERATIONS = 1000  # the C++ ExecutorConfig default, written out
SMOOTHQUANT_ALPHA = "0.5"  # convert_checkpoint.py help: "A good first try is 0.5"
DTYPE = {Precision.FP16: "float16", Precision.BF16: "bfloat16"}
QFORMAT = {(Precision.FP8, ""): "fp8", (Precision.INT4, matrix.AWQ): "int4_awq"}


@dataclass(frozen=True)
class TrtllmSteps:
    """The three steps of one node rank, and the cache folder they share."""

    cache_key: str  # folder name: model, precision, TP and the content hash
    convert: tuple[str, ...]
    build: tuple[str, ...]
    serve: tuple[str, ...]

    @property
    def served_name(self) -> str:
        return self.serve[1]


def method_of(topology: Topology) -> str:
    """The int8 / int4 method (`engine.trtllm_quant`, default weight-only); "" otherwise."""
    chosen = topology.spec.engine.trtllm_quant
    return chosen.value if chosen is not None else matrix.default_method(topology.precision)


def source_of(topology: Topology, context: LaunchContext) -> str:
    """The Hugging Face checkpoint: a local folder, or the repository id transformers fetches."""
    return context.model_path or topology.model.hf_repo


def convert_argv(topology: Topology, source: str) -> tuple[str, ...]:
    """`python3 convert_checkpoint.py ...` or `python3 quantize.py ...` into `checkpoint/`."""
    method = method_of(topology)
    dtype = DTYPE.get(topology.model.weight_format, "float16")
    tp = str(topology.tp)
    qformat = QFORMAT.get((topology.precision, method))
    if qformat is not None:
        argv = ["python3", QUANTIZE_SCRIPT, "--model_dir", source, "--dtype", dtype]
        argv += ["--qformat", qformat, "--output_dir", CHECKPOINT_DIR, "--tp_size", tp]
        if topology.precision is Precision.INT4:
            argv += ["--awq_block_size", str(matrix.AWQ_GROUP)]
        if topology.kv_cache_dtype is Precision.FP8:
            argv += ["--kv_cache_dtype", "fp8"]
        return tuple(argv)
    if topology.precision in DTYPE:
        dtype = DTYPE[topology.precision]
    argv = ["python3", CONVERT_SCRIPT, "--model_dir", source]
    argv += ["--chatglm_version", matrix.GLM_VERSION[topology.model.family]]
    argv += ["--dtype", dtype, "--tp_size", tp, "--workers", tp, "--output_dir", CHECKPOINT_DIR]
    if method == matrix.WEIGHT_ONLY:
        bits = "int8" if topology.precision is Precision.INT8 else "int4"
        argv += ["--use_weight_only", "--weight_only_precision", bits]
    elif method == matrix.SMOOTHQUANT:
        argv += ["--smoothquant", SMOOTHQUANT_ALPHA, "--per_channel", "--per_token"]
    return tuple(argv)


def build_argv(topology: Topology) -> tuple[str, ...]:
    """`trtllm-build ...`: the in-flight batching engine, sized by the spec's batch and context."""
    spec = topology.spec
    fmha = "fmha" in matrix.MATRIX[topology.model.family]
    argv = ["trtllm-build", "--checkpoint_dir", CHECKPOINT_DIR, "--output_dir", ENGINE_DIR]
    argv += ["--gemm_plugin", "auto", "--gpt_attention_plugin", "auto"]
    argv += ["--kv_cache_type", "paged", "--remove_input_padding", "enable"]
    # Paged context FMHA (chunked context, on by default) runs on context FMHA: both go off
    # for a model whose matrix row has no FMHA (ChatGLM-6B).
    switch = "enable" if fmha else "disable"
    argv += ["--context_fmha", switch, "--use_paged_context_fmha", switch]
    argv += ["--max_batch_size", str(spec.max_num_seqs)]
    argv += ["--max_input_len", str(topology.context_length)]
    argv += ["--max_seq_len", str(topology.context_length)]
    if spec.engine.chunked_prefill:
        argv += ["--max_num_tokens", str(spec.engine.chunked_prefill)]
    return (*argv, "--workers", str(topology.tp))


def served_link(topology: Topology) -> str:
    """The name the engine is served under: trtllm-serve has no served-model-name flag and
    names the model by its folder (serve/openai_server.py `model_dir.name`), so the script
    links `served_model_name` to `engine/`; a name with a `/` cannot be a folder name."""
    name = topology.served_model_name
    return ENGINE_DIR if "/" in name or name in (".", "..", CHECKPOINT_DIR) else name


def serve_argv(topology: Topology, context: LaunchContext, source: str) -> tuple[str, ...]:
    """`trtllm-serve <served name> --backend tensorrt ...` (OpenAI API on {host}:{port})."""
    spec = topology.spec
    model = served_link(topology)
    argv = ["trtllm-serve", model, "--backend", "tensorrt", "--tokenizer", source]
    argv += ["--trust_remote_code", "--host", HOST, "--port", PORT]
    argv += ["--extra_llm_api_options", STATS_OPTIONS]
    argv += ["--max_batch_size", str(spec.max_num_seqs)]
    argv += ["--max_seq_len", str(topology.context_length), "--tp_size", str(topology.tp)]
    if spec.engine.chunked_prefill:
        argv += ["--max_num_tokens", str(spec.engine.chunked_prefill)]
    if context.mem_fraction is not None:
        argv += ["--kv_cache_free_gpu_memory_fraction", f"{context.mem_fraction:.3f}"]
    return (*argv, *flag_args(spec.engine.args, separator="_"))


def cache_key(topology: Topology, convert: tuple[str, ...], build: tuple[str, ...]) -> str:
    """`<model>-<precision>[-<method>]-tp<N>-<hash>`: the hash of version, source and flags."""
    version = topology.spec.engine.version or TARGET_VERSION
    content = json.dumps({"version": version, "convert": convert, "build": build})
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    method = method_of(topology)
    label = topology.precision.value + (f"-{method}" if method else "")
    return f"{topology.model.name}-{label}-tp{topology.tp}-{digest}"


def steps(topology: Topology, context: LaunchContext) -> TrtllmSteps:
    """The three argv of one node rank (pure: the plan's record of what runs)."""
    source = source_of(topology, context)
    convert = convert_argv(topology, source)
    build = build_argv(topology)
    serve = serve_argv(topology, context, source)
    return TrtllmSteps(cache_key(topology, convert, build), convert, build, serve)


def _word(token: str) -> str:
    """A shell word: `$TRTLLM_EXAMPLES/...` stays expandable, everything else is quoted."""
    return f'"{token}"' if token.startswith(EXAMPLES + "/") else shlex.quote(token)


def _line(argv: tuple[str, ...]) -> str:
    return " ".join(_word(a) for a in argv)


def script(plan: TrtllmSteps) -> str:
    """The rank's shell script: build once per cache key (under flock), then serve."""
    folder = f'"${{GLMCTL_TRTLLM_CACHE:-{CACHE_DEFAULT}}}/{plan.cache_key}"'
    return "\n".join(
        [
            "set -e",
            f'TRTLLM_EXAMPLES="${{TRTLLM_EXAMPLES:-{EXAMPLES_DEFAULT}}}"',
            f"mkdir -p {folder} && cd {folder}",
            "exec 9>build.lock && flock 9",
            f"if [ ! -f {ENGINE_DIR}/config.json ]; then",
            f"  rm -rf {CHECKPOINT_DIR} {ENGINE_DIR}",
            f"  {_line(plan.convert)}",
            f"  {_line(plan.build)}",
            f"  rm -rf {CHECKPOINT_DIR}",
            "fi",
            stats_options_line(),  # under the lock: replicas of a node share the folder
            "exec 9>&-",
            *(
                [f"ln -sfn {ENGINE_DIR} {shlex.quote(plan.served_name)}"]
                if plan.served_name != ENGINE_DIR
                else []
            ),
            f"exec {_line(plan.serve)}",
        ]
    )


def stats_options_line() -> str:
    """The shell line writing the `--extra_llm_api_options` YAML (module docstring)."""
    body = f"iter_stats_max_iterations: {ITER_STATS_MAX_ITERATIONS}"
    return f"printf '%s\\n' {shlex.quote(body)} > {STATS_OPTIONS}"


def build_command(topology: Topology, context: LaunchContext) -> LaunchCommand:
    """`sh -c SCRIPT` for the replica's one node (resolve refuses multi-node TensorRT-LLM)."""
    assert context.nnodes == 1, "resolve refuses multi-node TensorRT-LLM replicas"
    argv = ("sh", "-c", script(steps(topology, context)))
    return LaunchCommand(argv, dict(topology.spec.engine.env), serves_http=True)


def script_steps(text: str) -> list[tuple[str, ...]]:
    """The three commands of a rank's script, split back into argv (for display and tests)."""
    found = []
    for line in text.splitlines():
        words = shlex.split(line.strip().removeprefix("exec "))
        if words and words[0] in ("python3", "trtllm-build", "trtllm-serve"):
            found.append(tuple(words))
    return found
