"""A tiny random checkpoint of the GLM-4.5 architecture, generated locally (never downloaded).

It carries every part of GLM-4.5 an engine must load: `Glm4MoeForCausalLM` with dense first
layers (`first_k_dense_replace`), MoE layers with routed experts saved one by one
(`mlp.experts.{e}.gate_proj/up_proj/down_proj`, as zai-org checkpoints store them, not the
fused 3-D layout recent transformers writes), a shared expert, the router's
`e_score_correction_bias`, one MTP (next-n) layer after the last decoder layer (`enorm`,
`hnorm`, `eh_proj`, `shared_head`), and a local byte-level BPE tokenizer with GLM's special
tokens and a GLM-style chat template (tools, `<think>`, `<tool_call>`, `<|observation|>`).

The shape comes from the catalog (`glm-4.5-tiny`); `tiny_config(arch)` turns it into a
`config.json`. Checkpoints are cached under `settings.engine_cache_dir / "models"`, keyed by
a hash of the config and of the generator's source, so a changed generator makes a new
folder. The writer (`tiny_writer.py`) needs numpy and `tokenizers`, which the vLLM venv has
and glmctl's own does not, so `ensure_tiny_model(python=...)` runs it as a script there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controlplane.local.launch import TINY_MODEL_NAME, is_local_model
from controlplane.local.locks import file_lock
from controlplane.local.tiny_writer import INIT_STD

if TYPE_CHECKING:
    from controlplane.catalog.architecture import Architecture

__all__ = [
    "TINY_MODEL_NAME",
    "ensure_tiny_model",
    "is_local_model",
    "local_checkpoint",
    "tiny_config",
]
READY_MARKER = ".complete"
WRITER = Path(__file__).with_name("tiny_writer.py")
TINY_WRITE_ESTIMATE = "about 1 s"  # measured: 0.8 s with numpy and tokenizers, 2 cores


def tiny_config(arch: Architecture) -> dict[str, Any]:
    """The `config.json` of a `Glm4MoeForCausalLM` with `arch`'s shape (GLM-4.5's keys)."""
    return {
        "architectures": ["Glm4MoeForCausalLM"],
        "model_type": "glm4_moe",
        "vocab_size": arch.vocab_size,
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "moe_intermediate_size": arch.moe_intermediate_size,
        "num_hidden_layers": arch.num_layers,
        "num_attention_heads": arch.num_attention_heads,
        "num_key_value_heads": arch.num_kv_heads,
        "head_dim": arch.head_dim,
        "partial_rotary_factor": 0.5,  # GLM-4.5 rotates half of each head
        "rope_theta": 1000000,
        "max_position_embeddings": arch.max_context,
        "n_routed_experts": arch.num_routed_experts,
        "n_shared_experts": arch.num_shared_experts,
        "num_experts_per_tok": arch.experts_per_token,
        "first_k_dense_replace": arch.first_dense_layers,
        "num_nextn_predict_layers": arch.num_nextn_layers,
        "n_group": 1,
        "topk_group": 1,
        "norm_topk_prob": True,
        "routed_scaling_factor": 2.5,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-05,
        "attention_bias": arch.attention_bias,
        "attention_dropout": 0.0,
        "use_qk_norm": False,
        "tie_word_embeddings": arch.tie_word_embeddings,
        "initializer_range": INIT_STD,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "pad_token_id": None,  # filled with the tokenizer's ids by the writer
        "eos_token_id": None,
    }


def checkpoint_key(config: dict[str, Any]) -> str:
    """Content hash naming a checkpoint folder: the config and the writer's source."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    digest.update(WRITER.read_bytes())
    return digest.hexdigest()[:16]


def ensure_tiny_model(
    python: Path | str | None = None,
    cache_dir: Path | None = None,
    arch: Architecture | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Folder of the tiny checkpoint, generating it on first use (idempotent, process-safe);
    `progress` hears when a first-use write starts and how long it took.

    `python` is an interpreter with numpy and `tokenizers` (the vLLM venv's); default: this
    one. `cache_dir` defaults to `settings.engine_cache_dir / "models"`.
    """
    if arch is None:
        from controlplane.catalog import find_model

        entry = find_model(TINY_MODEL_NAME)
        assert entry is not None, "catalog lost its tiny model entry"
        arch = entry.arch
    if cache_dir is None:
        from controlplane.settings import get_settings

        cache_dir = get_settings().engine_cache_dir / "models"
    config = tiny_config(arch)
    target = cache_dir / f"{TINY_MODEL_NAME}-{checkpoint_key(config)}"
    if (target / READY_MARKER).exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_dir / f".{target.name}.lock"):
        if (target / READY_MARKER).exists():  # another process made it meanwhile
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
        staging.chmod(0o755)
        started = time.monotonic()
        if progress:
            progress(f"writing the tiny checkpoint to {target} (first use; {TINY_WRITE_ESTIMATE})")
        try:
            _run_writer(python or sys.executable, config, staging)
            if progress:
                progress(f"tiny checkpoint written in {time.monotonic() - started:.0f} s")
            (staging / READY_MARKER).write_text(checkpoint_key(config) + "\n")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def local_checkpoint(
    name: str, python: Path | str | None = None, progress: Callable[[str], None] | None = None
) -> Path:
    """The folder of a locally generated catalog model (generated on first use)."""
    if not is_local_model(name):
        from controlplane.errors import UserError

        raise UserError(
            f"`{name}` is not a model glmctl generates locally.",
            fix=f"use `{TINY_MODEL_NAME}`, or serve `{name}` from its Hugging Face repository.",
        )
    return ensure_tiny_model(python=python, progress=progress)


def _run_writer(python: Path | str, config: dict[str, Any], out: Path) -> None:
    from controlplane.errors import UserError

    done = subprocess.run(
        [str(python), "-I", str(WRITER.resolve()), "--out", str(out)],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise UserError(
            f"generating the tiny GLM-4.5 checkpoint failed with {python}:\n{tail}",
            fix="use the vLLM engine venv's python (it has numpy and tokenizers):"
            " `controlplane.engines.venv.ensure_engine_venv`.",
        )
