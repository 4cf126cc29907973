"""TensorRT-LLM's memory rule: the KV cache takes a fraction of what is free after weights.

`trtllm-serve --kv_cache_free_gpu_memory_fraction` (alias `--free_gpu_memory_fraction`,
default 0.9; tensorrt_llm/commands/serve.py, "Free GPU memory fraction reserved for KV
Cache, after allocating model weights and buffers") sizes the paged pool once the engine
(weights and its activation buffers) is loaded. So per GPU:
    kv = fraction x (GPU - not visible - runtime - weights)
The runtime term is an estimate, not a measurement (no GPU here): a CUDA context plus the
engine's largest activation, `max_num_tokens` (trtllm-build default 8192, BuildConfig)
tokens through the MLP's gate and up projections of one rank in 16 bit. KV pages are
`tokens_per_block` tokens (tensorrt_llm/plugin/plugin.py PluginConfig default 32).
"""

from __future__ import annotations

from controlplane.capacity.layout import Layout
from controlplane.capacity.weights import Split, rank_weights
from controlplane.catalog import GIB

DEFAULT_KV_FRACTION = 0.9  # serve.py `--kv_cache_free_gpu_memory_fraction` default
DEFAULT_MAX_NUM_TOKENS = 8192  # trtllm-build `--max_num_tokens` default (BuildConfig)
TOKENS_PER_BLOCK = 32  # plugin.py PluginConfig.tokens_per_block default
CUDA_CONTEXT_BYTES = 0.5 * GIB  # estimate: CUDA context, cuBLAS and NCCL workspaces
ACTIVATION_BYTES = 2  # 16-bit activations


def runtime_bytes(layout: Layout) -> float:
    """Estimated per-GPU bytes besides weights and KV: context + the largest activation."""
    tokens = layout.chunked_prefill or DEFAULT_MAX_NUM_TOKENS
    width = layout.arch.hidden_size + 2 * layout.arch.intermediate_size / layout.tp
    return CUDA_CONTEXT_BYTES + tokens * width * ACTIVATION_BYTES


def trtllm_terms(layout: Layout) -> tuple[float, float, dict[str, float]]:
    """(fraction, static bytes for weights + KV, reserved terms) of one GPU (first stage)."""
    fraction = layout.mem_fraction if layout.mem_fraction is not None else DEFAULT_KV_FRACTION
    split = Split(layout.tp, layout.dense_tp, layout.pp, layout.moe_group, 0, 0)
    weights = rank_weights(layout.arch, layout.precision, split).total
    total = float(layout.gpu.memory_bytes)
    hidden = total - float(layout.gpu.torch_total_bytes)
    runtime = runtime_bytes(layout)
    free_after_weights = max(0.0, total - hidden - runtime - weights)
    reserved = {
        "not_visible_to_torch": hidden,
        "runtime_estimate": runtime,
        "outside_kv_fraction": free_after_weights * (1 - fraction),
    }
    return fraction, weights + free_after_weights * fraction, reserved
