"""Which Kubernetes nodes a worker group may run on: glmctl's GPU names -> the values of
`nvidia.com/gpu.product` (pure).

NVIDIA's GPU feature discovery (part of the GPU operator) labels each GPU node with the
NVML device name of its GPUs, spaces replaced by dashes (`NVIDIA H100 80GB HBM3` ->
`NVIDIA-H100-80GB-HBM3`). One glmctl GPU name covers the boards NVML names differently
(SXM and PCIe, NVL). Names not in this table are set per topology
(`kubernetes.gpu_products`); `glmctl render` refuses a GPU with neither.
"""

from __future__ import annotations

from typing import Any

from controlplane.errors import UserError
from controlplane.render.k8s.common import GPU_PRODUCT_LABEL

# NVML device names (`nvidia-smi --query-gpu=name`) of the boards behind each catalog name.
NVML_NAMES: dict[str, tuple[str, ...]] = {
    "H100": ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL"),
    "H200": ("NVIDIA H200", "NVIDIA H200 NVL"),
    "B200": ("NVIDIA B200",),
    "A100-80G": ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"),
    "A100-40G": ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"),
    "L40S": ("NVIDIA L40S",),
    "V100": ("Tesla V100-SXM2-32GB", "Tesla V100-PCIE-32GB"),
    "V100-16G": ("Tesla V100-SXM2-16GB", "Tesla V100-PCIE-16GB"),
}


def product_label(nvml_name: str) -> str:
    """The label value GPU feature discovery derives from an NVML device name."""
    return nvml_name.replace(" ", "-")


def gpu_products(gpu_type: str, override: list[str] | None = None) -> list[str]:
    """`nvidia.com/gpu.product` values for `gpu_type`; `override` (the topology's) wins."""
    if override:
        return list(override)
    names = NVML_NAMES.get(gpu_type)
    if names is None:
        raise UserError(
            f"glmctl has no `nvidia.com/gpu.product` values for GPU type `{gpu_type}`.",
            fix="set `kubernetes.gpu_products` in the topology to your nodes' label values"
            " (`kubectl get nodes -L nvidia.com/gpu.product`).",
        )
    return [product_label(n) for n in names]


def node_affinity(products: list[str]) -> dict[str, Any]:
    """Required node affinity: a node whose GPU product is one of `products`."""
    term = {"key": GPU_PRODUCT_LABEL, "operator": "In", "values": products}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [term]}]
            }
        }
    }
