"""GPU types: memory as the driver reports it, HBM bandwidth and dense tensor FLOP/s."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class GpuType:
    name: str  # canonical, as Ray's accelerator_type names it: H100, H200, A100-80G, ...
    display_name: str
    memory_bytes: int  # what nvidia-smi reports as total (the engines size from this)
    hbm_bandwidth: float  # bytes/s
    bf16_flops: float  # dense FLOP/s
    fp8_flops: float | None  # dense FLOP/s; None: no FP8 tensor cores
    interconnect_bandwidth: float  # NVLink (or PCIe) bytes/s per GPU
    default_per_node: int = 8
    source: str = ""
    # What torch.cuda.mem_get_info() reports as total: the driver keeps a few hundred MiB of
    # what nvidia-smi shows. vLLM sizes against this figure; 0: the same as memory_bytes.
    torch_total_gib: float = 0.0
    torch_total_source: str = ""

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB

    @property
    def torch_total_bytes(self) -> int:
        """Total memory as torch (and so vLLM and SGLang) sees it."""
        return int(self.torch_total_gib * GIB) if self.torch_total_gib else self.memory_bytes

    @property
    def supports_fp8(self) -> bool:
        return self.fp8_flops is not None


_REF = "shared/reference/model-configs.md (Hardware)"
_OOM = 'PyTorch OOM messages: "GPU 0 has a total capacity of '

GPUS: tuple[GpuType, ...] = (
    GpuType(
        "H100",
        "H100 SXM 80GB",
        81559 * MIB,
        3.35e12,
        989e12,
        1979e12,
        900e9,
        source=f"{_REF}; nvidia-smi 81,559 MiB",
        torch_total_gib=79.19,
        torch_total_source=(
            'vLLM logs on H100: "Free memory on device (78.57/79.18 GiB) on startup"'
            " (llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md) up to"
            " 79.25 GiB with other drivers; 79.19 GiB as in glmctl issue 11"
        ),
    ),
    GpuType(
        "H200",
        "H200 SXM 141GB",
        143771 * MIB,
        4.8e12,
        989e12,
        1979e12,
        900e9,
        source=f"{_REF}; nvidia-smi 143,771 MiB",
        torch_total_gib=139.81,
        torch_total_source=(
            'PyTorch OOM message on H200: "GPU 1 has a total capacity of 139.81 GiB"'
            " (modelscope/ms-swift#9191)"
        ),
    ),
    GpuType(
        "B200",
        "B200 180GB",
        183359 * MIB,
        8.0e12,
        2250e12,
        4500e12,
        1800e9,
        source="NVIDIA DGX B200 datasheet (1,440 GB / 8 GPUs, 64 TB/s, 72 PFLOPS FP8 sparse)",
        torch_total_gib=178.35,
        torch_total_source=_OOM + '178.35 GiB"',
    ),
    GpuType(
        "A100-80G",
        "A100 SXM 80GB",
        81920 * MIB,
        2.04e12,
        312e12,
        None,
        600e9,
        source=_REF,
        torch_total_gib=79.15,
        torch_total_source=_OOM + "79.15 GiB" + '"',
    ),
    GpuType(
        "A100-40G",
        "A100 SXM 40GB",
        40960 * MIB,
        1.56e12,
        312e12,
        None,
        600e9,
        source=_REF,
        torch_total_gib=39.39,
        torch_total_source=_OOM + "39.39 GiB" + '"',
    ),
    GpuType(
        "L40S",
        "L40S 48GB",
        46068 * MIB,
        0.864e12,
        362e12,
        733e12,
        64e9,
        source="NVIDIA L40S datasheet (48 GB GDDR6, 864 GB/s, 362 TFLOPS BF16 dense)",
        torch_total_gib=44.39,
        torch_total_source=_OOM + "44.39 GiB" + '"',
    ),
    GpuType(
        "V100",
        "V100 SXM2 32GB",
        32768 * MIB,
        0.9e12,
        125e12,
        None,
        300e9,
        source=f"{_REF} (FP16 tensor FLOP/s; no BF16 or FP8)",
        torch_total_gib=31.74,
        torch_total_source=_OOM + "31.74 GiB" + '"',
    ),
    GpuType(
        "V100-16G",
        "V100 SXM2 16GB",
        16384 * MIB,
        0.9e12,
        125e12,
        None,
        300e9,
        source=_REF,
        torch_total_gib=15.77,
        torch_total_source=_OOM + "15.77 GiB" + '"',
    ),
    # No GPU: vLLM's CPU build (controlplane/local/cpu.py) serves small models on the host.
    # Memory is the host RAM one CPU engine may use (a tiny model measured about 2.2 GB in
    # shared/reference/real-engines-on-cpu.md); speed is 2 AVX2 cores: 2 x 2.5 GHz x 32 FLOP
    # per cycle, about 20 GB/s of DDR4 bandwidth. One "device" per node.
    GpuType(
        "CPU",
        "CPU (vLLM CPU build)",
        8192 * MIB,
        20e9,
        160e9,
        None,
        20e9,
        default_per_node=1,
        source="shared/reference/real-engines-on-cpu.md; 2-core AVX2 host",
    ),
)

_BY_NAME = {g.name.lower(): g for g in GPUS}
_ALIASES = {
    "h100-80g": "h100",
    "h100-sxm": "h100",
    "h200-141g": "h200",
    "a100": "a100-80g",
    "a100-80gb": "a100-80g",
    "a100-40gb": "a100-40g",
    "v100-32g": "v100",
    "l40s-48g": "l40s",
}


def gpu_names() -> list[str]:
    return [g.name for g in GPUS]


def find_gpu(name: str) -> GpuType | None:
    """GPU type by name, case-insensitive (h100, H200, a100-40g, ...); None if unknown."""
    key = name.strip().lower()
    return _BY_NAME.get(_ALIASES.get(key, key))
