"""A tiny GLM-4.7-Flash (MLA) on real vLLM on the CPU: the KV tokens vLLM allocates match
glmctl's MLA prediction (capacity/attention_cache.py) within 5%.

vLLM 0.32 runs MLA on the CPU with its reference backend (16-token blocks, a 576-wide
latent). glmctl predicts the tokens from the architecture alone: VLLM_CPU_KVCACHE_SPACE
bytes over (layers x 576 values x 2 bytes) per token, in whole blocks. A GQA-style formula
(K and V for each of the 4 heads) would predict a different count, so the match tests the
MLA layout, not only the arithmetic.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from controlplane.catalog import GIB
from controlplane.engines import vllm
from controlplane.engines.venv import ensure_engine_venv
from controlplane.local.ports import free_port
from controlplane.local.tiny_mla import (
    GLM47_FLASH_TINY,
    ensure_tiny_mla_model,
    predicted_kv_tokens,
)
from controlplane.spec.models import EngineKind

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(1200)]
KV_SPACE_GIB = 1
KV_LINE = re.compile(r"KV cache size: ([\d,]+) tokens")


def _start(python: Path, model: Path, log: Path, cache: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": str(KV_SPACE_GIB),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_CACHE_ROOT": str(cache),
    }
    argv = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(free_port()), "--enforce-eager",
            "--distributed-executor-backend", "uni", "--max-model-len", "512",
            "--dtype", "bfloat16", "--max-num-seqs", "4"]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip


def _logged_kv_tokens(process: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = KV_LINE.search(log.read_text(errors="replace"))
        if found:
            return int(found.group(1).replace(",", ""))
        if process.poll() is not None:
            break
        time.sleep(1)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise AssertionError(f"vLLM logged no KV cache size (exit {process.poll()}):\n{tail}")


def test_tiny_mla_kv_tokens_match_vllm_on_cpu(tmp_path: Path) -> None:
    venv = ensure_engine_venv(EngineKind.VLLM, vllm.TARGET_VERSION)
    model = ensure_tiny_mla_model(venv.python, tmp_path / "models")
    log = tmp_path / "vllm.log"
    process = _start(venv.python, model, log, tmp_path / "vllm-cache")
    try:
        logged = _logged_kv_tokens(process, log, timeout=600)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and the engine core it started
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    predicted = predicted_kv_tokens(GLM47_FLASH_TINY, KV_SPACE_GIB * GIB)
    print(f"\ntiny glm4_moe_lite on vLLM CPU: logged {logged} KV tokens, glmctl predicts"
          f" {predicted} ({predicted / logged - 1:+.2%})")  # fmt: skip
    assert abs(predicted - logged) <= 0.05 * logged
    assert "CPU_MLA" in log.read_text(errors="replace") or "AMX_MLA" in log.read_text()
