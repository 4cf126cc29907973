"""Every constant the capacity and performance models use, each with where it comes from.

Nothing here is fitted to the model card's requirement tables: the tables are what the
tests check the model against. Engine constants are the engines' own defaults, read from
their source (named next to each); hardware numbers live in `controlplane.catalog.gpus`.
"""

from __future__ import annotations

from controlplane.catalog.gpus import GIB

# ----- SGLang memory rules ----------------------------------------------------------------
# python/sglang/srt/server_args.py (ServerArgs._handle_gpu_memory_settings), as summarised in
# shared/reference/model-configs.md ("How the engines size GPU memory").
SGLANG_RESERVED_BASE_MIB = 512  # fixed reserve before the per-feature terms
SGLANG_CHUNKED_PREFILL_FLOOR = 2048  # reserved grows with max(chunked_prefill, 2048)
SGLANG_CHUNKED_PREFILL_FACTOR = 1.5  # ... x 1.5 MiB per chunk token
SGLANG_CUDA_GRAPH_MIB_PER_BS = 2  # cuda_graph_max_bs x 2 MiB
SGLANG_PARALLEL_MIB = 1024  # tp x pp / 8 x 1024 MiB (communication buffers)
SGLANG_LARGE_GPU_BYTES = 60 * GIB  # "on GPUs over 60 GiB ..."
SGLANG_LARGE_GPU_MIN_RESERVED_MIB = 10240  # "... reserved is at least 10240 MiB"
SGLANG_SPECULATIVE_EXTRA_MIB = 2048  # EAGLE / MTP draft worker buffers
SGLANG_CUDA_GRAPH_TP_THRESHOLD = 4  # cuda_graph_max_bs tiers differ below TP 4
# server_args.py GPU tiers: (GPU memory below GiB, chunked_prefill_size, cuda_graph_max_bs
# below TP 4, cuda_graph_max_bs at TP >= 4). "A10, 4090" < 35; "A100 40GB, L40" < 60;
# "H100, A100" < 90; "H20, H200" < 160; above: "B200, MI300" 16384 / 512.
SGLANG_GPU_TIERS: tuple[tuple[int, int, int, int], ...] = (
    (35, 2048, 24, 80),
    (60, 4096, 32, 160),
    (90, 8192, 256, 512),
    (160, 8192, 256, 512),
)
SGLANG_LARGEST_TIER = (16384, 512)

# SGLang's budget starts from the free memory it measures once the process has a CUDA context
# and torch.distributed is up, before any weight is loaded (model_runner.py `init_torch_distributed`
# returns `min_per_gpu_memory`, which `profile_max_num_token` takes as `total_gpu_memory`):
#   KV pool = free after loading - pre-load free x (1 - mem_fraction_static).
# Context: torch total - the free memory SGLang logs before "Init torch distributed": about
# 0.3-0.5 GiB (8 x H200: 139.81 GiB total, 137.29 + 2.0 GiB logged, sgl-project/sglang#11716;
# 4 x L4: 22.05 - 21.63 - 0.13 = 0.29 GiB, didier-durand/llms-in-clouds docs/sglang.md).
# torch.distributed then takes NCCL / custom-allreduce buffers: "Init torch distributed ends.
# mem usage=1.96-2.01 GB" on 8 x H200 NVLink (sgl-project/sglang#11716), "mem usage=0.13 GB"
# on 4 x L4 over PCIe (custom allreduce off; the docs/sglang.md log), 0.00 GB at TP 1.
SGLANG_CONTEXT_BYTES = int(0.5 * GIB)
SGLANG_DIST_NVLINK_BYTES = int(2.0 * GIB)
SGLANG_DIST_PCIE_BYTES = int(0.13 * GIB)
SGLANG_PAGE_SIZE = 1  # server_args.py page_size default (FA3 / FlashInfer on Hopper)
NVLINK_MIN_BANDWIDTH = 300e9  # bytes/s per GPU: at or above this a GPU type is NVLink-connected

# ----- vLLM memory rules ------------------------------------------------------------------
# vllm/v1/worker/gpu_worker.py `determine_available_memory` (memory_profiling):
#   requested = torch total x gpu_memory_utilization
#   KV bytes = requested - (weights + torch activation peak of the profile run + non-torch
#              memory + CUDA-graph estimate, when that version subtracts it)
# and vllm/v1/core/kv_cache_utils.py rounds the pool down to whole blocks, the same number of
# blocks on every worker (the smallest pipeline stage decides).
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # --gpu-memory-utilization default
VLLM_DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192  # V1 default for online serving on large GPUs
VLLM_DEFAULT_BLOCK_SIZE = 16  # --block-size default for GQA attention backends
VLLM_MLA_BLOCK_SIZE = 64  # FlashMLA pages (DeepSeek MLA)
# Non-torch memory (CUDA context growth, cuBLAS workspace, NCCL / custom-allreduce buffers)
# that vLLM logs as "non-torch memory": 0.13-0.14 GiB at TP 1 on H100 (llm-d/llm-d-benchmark
# config_explorer/empirical-vllm-memory-results.md), about 0.28 GiB at TP 1 on A100 (0.50 GiB
# left beside a 0.22 GiB forward peak, dennislee22/vLLM-benchmarking log/vllm-7B-1gpuA10080GB-
# 0.5GRAM.log); 0.54-0.55 GiB at TP 2 on H100 NVLink (llm-d file).
# Across nodes NCCL keeps network buffers and custom allreduce is off: vLLM 0.10.1.1 with TP 2
# over two A100-40GB nodes (Ray) left 1.54 GiB for activation + non-torch where the same model
# on one node left 0.62 (dennislee22/vLLM-benchmarking log/vllm-7B-2gpuA10040GB-0.5GRAM-
# diff-nodes.log vs ...-same-node.log): 1.45 GiB taken for a replica that spans nodes.
VLLM_NON_TORCH_TP1_BYTES = int(0.25 * GIB)
VLLM_NON_TORCH_TP_BYTES = int(0.55 * GIB)
VLLM_NON_TORCH_MULTINODE_BYTES = int(1.45 * GIB)
# CUDA graph memory: "CUDA graph memory profiling is enabled (default since v0.21.0)" (the
# vLLM start-up log says so; VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0 turns it off); the
# graphs took 0.10-1.03 GiB on H100 across models (llm-d file above) and 0.50-1.00 GiB on A100
# (dennislee22 logs: "Graph capturing finished ... took"). 0.4 GiB taken for versions that
# subtract the estimate; older versions capture after sizing the pool (not in the budget).
VLLM_CUDAGRAPH_SUBTRACTED_SINCE = (0, 21)
VLLM_CUDAGRAPH_ESTIMATE_BYTES = int(0.4 * GIB)
# Activation peak of the profile run = the larger of the forward pass over
# max_num_batched_tokens and the dummy sampler run over max_num_seqs rows of float32 logits,
# which makes vocab-wide float32 copies per row (logits, probs, top-k/top-p buffers); how many
# depends on the version:
# - before 0.11: about one. vLLM 0.10.1.1 on A100 left 0.50 GiB for activation + non-torch at
#   256 sequences (dennislee22/vLLM-benchmarking log/vllm-7B-1gpuA10080GB-0.5GRAM.log:
#   0.5 x 79.15 - 14.25 weights - 24.83 KV);
# - 0.11 (V1 model runner, gpu_model_runner.py): peaks of 4.76 GiB (Llama, vocab 128256),
#   5.56-5.64 GiB (Qwen3, 151936) and 7.38 GiB (gpt-oss, 201088) at 1024 sequences, flat in TP
#   and model width (llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md):
#   9.7 copies;
# - later versions are taken to keep the 0.11 figure (no public log of 0.32's profile run was
#   found). At glmctl's batch sizes (max_num_seqs 8 on the card's layouts) the sampler term is
#   under 0.1 GiB, so the forward pass decides the peak and this choice barely moves a plan.
VLLM_SAMPLER_COPIES_PRE_0_11 = 1.0
VLLM_SAMPLER_COPIES_V1 = 9.7
VLLM_V1_SAMPLER_SINCE = (0, 11)
# Forward-pass activation per batched token, in 16-bit values: residual and norm buffers
# (4 x hidden), the attention projections on the rank, the widest MLP intermediate; MoE adds
# the fused-MoE workspace (top-k x (2 x moe_intermediate / tp + hidden) per token). A stated
# model; the profile runs of the logs above were all sampler-bound.
VLLM_FORWARD_RESIDUAL_WIDTHS = 4

# ----- KV and weights --------------------------------------------------------------------
# Default scale storage when a checkpoint's quantization_config is not known (catalog entries):
# block-wise FP8 stores one float32 scale per 128 x 128 weight block (DeepSeek-V3 /
# GLM-4.5-FP8 config.json quantization_config.weight_block_size).
FP8_SCALE_BYTES = 4
# Weight-only INT8 / INT4 (GPTQ / AWQ): one FP16 scale per group of 128 values
# (AutoGPTQ and AutoAWQ default group_size 128).
INT_GROUP_SIZE = 128
INT_SCALE_BYTES = 2

# ----- host RAM ----------------------------------------------------------------------------
PINNED_HOST_OVERHEAD = 1.9  # reference/model-configs.md: pinned --cpu-offload-gb takes ~1.9x
ENGINE_PROCESS_HOST_BYTES = 6 * GIB  # per GPU worker: CUDA runtime, torch, tokenizer (RSS)
ENGINE_FRONTEND_HOST_BYTES = 4 * GIB  # per node: HTTP server, tokenizer manager, detokenizer
RAY_OBJECT_STORE_FRACTION = 0.3  # Ray default object_store_memory: 30% of node RAM
RAY_OBJECT_STORE_CAP_BYTES = 200 * 10**9  # Ray caps the default object store at 200 GB
OS_RESERVE_HOST_BYTES = 16 * GIB  # OS, kubelet/raylet, monitoring agents
# Typical 8-GPU Hopper node (DGX H100 / H200): 2 TB system memory (NVIDIA DGX datasheets).
DEFAULT_NODE_RAM_BYTES = 2 * 1000**4
MODEL_CARD_HOST_RAM_BYTES = 1000**4  # GLM-4.5 card: "more than 1 TB of server memory"
CARD_NODE_GPUS = 8  # reference/glm45-deployment.md: "A node holds 8 GPUs"

# ----- performance (roofline) ---------------------------------------------------------------
# Fraction of peak HBM bandwidth a decode step achieves. Stated assumption: memory-bound
# GEMV/attention kernels reach about 70-80% of peak on Hopper (NVIDIA's STREAM-like
# measurements); 0.75 is taken.
HBM_EFFICIENCY = 0.75
# Fraction of peak tensor FLOP/s a large prefill achieves (model FLOPs utilisation). Stated
# assumption: published MFU for MoE inference prefill is about 40-60%; 0.5 is taken.
FLOPS_EFFICIENCY = 0.5
# One all-reduce of a small decode activation: NVLink latency within a node about 10 us,
# InfiniBand across nodes about 30 us (NCCL small-message latency). Two per layer under TP.
ALLREDUCE_LATENCY_INTRA_S = 10e-6
ALLREDUCE_LATENCY_INTER_S = 30e-6
# Pipeline stage hand-off (send activations to the next stage): about 50 us per boundary.
PP_STAGE_LATENCY_S = 50e-6
