"""A tiny random GLM-4.7-Flash (`glm4_moe_lite`, MLA) checkpoint for vLLM on the CPU, and
the KV tokens glmctl predicts vLLM's CPU worker will hold for it.

vLLM 0.32's CPU platform runs MLA with its reference backend (`CPU_MLA`,
vllm/v1/attention/backends/mla/cpu_mla.py), whose decode kernel compiles only for a
576-wide latent (kv_lora_rank 512 + qk_rope_head_dim 64, GLM-4.7-Flash's own) in blocks of
16 tokens: the tiny model keeps those two widths and shrinks everything else. Sparse
attention (GLM-5) is refused on the CPU ("Sparse Attention is not supported on CPU").

Written beside GLM-4.5's tiny model (`tiny_model.py`, `tiny_writer.py`), reusing its
tokenizer and safetensors writer.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from controlplane.capacity.attention_cache import kv_cache_bytes_per_token_layer
from controlplane.catalog import GIB, Architecture, Precision
from controlplane.catalog.config_json import next_config
from controlplane.catalog.shapes_next import GLM47_FLASH
from controlplane.local import tiny_model

MLA_WRITER = Path(__file__).with_name("tiny_mla_writer.py")
CPU_MLA_BLOCK_TOKENS = 16  # vLLM CpuPlatform forces block_size 16 for the CPU MLA kernel

GLM47_FLASH_TINY = replace(
    GLM47_FLASH,
    hidden_size=64,
    num_layers=2,
    num_attention_heads=4,
    head_dim=64 + 64,
    intermediate_size=128,
    vocab_size=1024,
    max_context=4096,
    moe_intermediate_size=32,
    num_routed_experts=4,
    experts_per_token=2,
    num_nextn_layers=0,
    q_lora_rank=32,
    qk_nope_head_dim=64,
    v_head_dim=64,
    sources=("controlplane/local/tiny_mla.py (kv_lora 512 + rope 64 kept: vLLM CPU MLA)",),
)


def predicted_kv_tokens(arch: Architecture, kv_space_bytes: int) -> int:
    """KV tokens vLLM's CPU worker allocates in `kv_space_bytes` (VLLM_CPU_KVCACHE_SPACE):
    whole 16-token blocks of every layer's MLA entry (capacity/attention_cache.py)."""
    per_token = kv_cache_bytes_per_token_layer(arch, Precision.BF16, 1) * arch.num_layers
    blocks = math.floor(kv_space_bytes / (CPU_MLA_BLOCK_TOKENS * per_token))
    return blocks * CPU_MLA_BLOCK_TOKENS


def ensure_tiny_mla_model(python: Path | str, cache_dir: Path) -> Path:
    """Folder of the tiny MLA checkpoint under `cache_dir`, written on first use."""
    config = next_config(GLM47_FLASH_TINY)
    target = cache_dir / f"glm-4.7-flash-tiny-{tiny_model.checkpoint_key(config)}"
    if (target / tiny_model.READY_MARKER).exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
    try:
        argv = [str(python), "-I", str(MLA_WRITER), "--base", str(tiny_model.WRITER.resolve())]
        done = subprocess.run([*argv, "--out", str(staging)], input=json.dumps(config),
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"tiny MLA writer failed: {done.stderr[-2000:]}")
        (staging / tiny_model.READY_MARKER).write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def kv_space_bytes(gib: int) -> int:
    return int(gib * GIB)
