"""The `kubernetes:` section of a topology: what `glmctl render --target k8s` needs that the
plan does not decide (images, where the checkpoint comes from, API keys, network fabric).

Nothing here changes what runs on the embedded cluster, and a topology without the section
serialises (plan, digest, render) as before it existed (TopologySpec drops it when unset).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from controlplane.spec.fields import NAME_PATTERN, PositiveInt, StrictModel


class ModelStorage(StrEnum):
    PVC = "pvc"  # a ReadOnlyMany volume filled once by the download Job
    HOST_PATH = "host_path"  # a folder on every GPU node (local NVMe), filled by the user


class UpgradeStrategy(StrEnum):
    """KubeRay RayService `upgradeStrategy.type` (v1.7.0 accepts these three; glmctl renders
    the two that need no Gateway API)."""

    NEW_CLUSTER = "NewCluster"  # a changed pod template starts a second cluster, then switches
    NONE = "None"  # KubeRay never replaces the cluster; only serveConfigV2 updates apply


class ModelsSpec(StrictModel):
    """Where the engines read the checkpoint (Hugging Face cache layout under HF_HOME)."""

    storage: ModelStorage = Field(
        ModelStorage.PVC, description="pvc (rendered ReadOnlyMany claim) or host_path."
    )
    claim: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="An existing PVC to use instead of the rendered `<name>-models`.",
    )
    storage_class: str | None = Field(
        None, description="StorageClass of the rendered PVC (must offer ReadOnlyMany)."
    )
    size_gib: PositiveInt | None = Field(
        None, description="PVC size; default: the checkpoint's bytes plus headroom."
    )
    host_path: str = Field("/mnt/glmctl-models", description="Node folder for host_path.")
    download: bool = Field(True, description="Render the Job that downloads the checkpoint.")


class RdmaSpec(StrictModel):
    """An RDMA NIC for NCCL between the nodes of one replica."""

    resource: str = Field(
        "rdma/rdma_shared_device_a",
        description="Extended resource of the RDMA device plugin (k8s-rdma-shared-dev-plugin's"
        " default name; the NVIDIA Network Operator's is configurable).",
    )
    count: PositiveInt = Field(1, description="Devices per worker pod.")
    hca: str | None = Field(None, description="NCCL_IB_HCA, e.g. `mlx5`; default: NCCL's pick.")


class KubernetesSpec(StrictModel):
    """Render options for KubeRay manifests (`glmctl render FILE --target k8s`)."""

    image: str | None = Field(
        None, description="Ray pods' image; default glmctl-<engine>:<glmctl>-<engine version>."
    )
    router_image: str | None = Field(None, description="Router image; default glmctl:<glmctl>.")
    api_keys_secret: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Secret holding the router's API keys (key: key name, value: the secret);"
        " default `<name>-api-keys` (`glmctl keys create --k8s` prints one).",
    )
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    upgrade_strategy: UpgradeStrategy = Field(
        UpgradeStrategy.NEW_CLUSTER, description="RayService upgradeStrategy.type."
    )
    socket_ifname: str = Field(
        "eth0", description="Pod interface for NCCL/Gloo sockets (NCCL/GLOO_SOCKET_IFNAME)."
    )
    rdma: RdmaSpec | None = Field(
        None, description="RDMA NIC for multi-node replicas; unset: NCCL over TCP sockets."
    )
    redis_tls: bool = Field(False, description="External Redis over TLS (`rediss://`).")
    monitoring_namespace: str = Field(
        "monitoring",
        description="Namespace of Prometheus: the only one, besides the deployment's own"
        " routers and Ray pods, whose pods may reach the engines' and Ray's metrics ports.",
    )
    gpu_products: list[str] = Field(
        default_factory=list,
        description="`nvidia.com/gpu.product` values the worker pods may run on; default:"
        " the products of the topology's GPU type (render/k8s/gpus.py).",
    )
