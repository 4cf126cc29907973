"""Prefill/decode disaggregation (PD) in a topology: a prefill pool and a decode pool.

A topology with `disaggregation:` serves one model under one served name from two engine
pools: the prefill pool computes the prompt's KV cache and hands it over the network to
the decode pool, which generates the answer. Each pool field left out takes the
topology's own value (its `gpus`, `parallelism`, `replicas`, `max_num_seqs`, ...), so the
top-level fields read as "what a pool runs unless it says otherwise".

This module is structure only (pure, no I/O). Defaults that depend on the engine (the
transfer backend, the ports) are filled by `transfer_backend()` and `bootstrap_port()`
here from the engine's `PdRule` (`controlplane.spec.pd_engines`, where the engine facts
and their sources are), the pools are resolved into `Topology` values by
`controlplane.spec.pd_pools`, and what the engines refuse is checked by
`controlplane.capacity.pd_checks`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from controlplane.spec.fields import Port, PositiveInt, StrictModel
from controlplane.spec.pd_engines import SHARED_STORAGE_ROOT, transfer_rule

if TYPE_CHECKING:  # the topology's own sections; bound by `bind_sections` (models.py)
    from controlplane.spec.models import (
        KvCacheDtype,
        ParallelismSpec,
        ReplicaSpec,
        SpeculativeSpec,
    )

__all__ = [
    "DisaggregationSpec",
    "NetworkSpec",
    "PoolEngineSpec",
    "PoolGpus",
    "PoolSpec",
    "TransferSpec",
    "Transport",
]


class Transport(StrEnum):
    RDMA = "rdma"  # InfiniBand / RoCE through the engines' RDMA transfer engines
    TCP = "tcp"  # plain sockets: mooncake_tcp (SGLang), NIXL's UCX over TCP (vLLM)


# Link speed per GPU when the spec gives none: HGX H100/H200 nodes carry one 400 Gb/s
# ConnectX-7 (NDR) port per GPU; 100 Gb/s is a common data-centre Ethernet port.
DEFAULT_LINK_GBPS = {Transport.RDMA: 400.0, Transport.TCP: 100.0}


class PoolGpus(StrictModel):
    """GPUs of one replica of a pool; the GPU type and node size default to the topology's."""

    count: PositiveInt = Field(description="GPUs one replica of the pool spans.", examples=[4])
    type: str | None = Field(None, description="GPU type; default: the topology's `gpus.type`.")
    nodes: PositiveInt | None = Field(
        None, description="Nodes one replica spans; default: as few as hold `count`."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `gpus: 4` and `gpus: 4xH200` as in the topology's own `gpus`.
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value}
        if isinstance(value, str) and "x" in value.lower():
            count, _, gpu_type = value.lower().partition("x")
            if count.strip().isdigit():
                return {"count": int(count), "type": gpu_type.strip()}
        return value


class PoolEngineSpec(StrictModel):
    """Engine settings of one pool; the engine kind is the topology's (one engine)."""

    version: str | None = Field(
        None, description="Engine version; must equal the other pool's (a P-D handshake checks it)."
    )
    mem_fraction: float | None = Field(
        None, gt=0.0, lt=1.0, description="Memory fraction of this pool's GPUs."
    )
    chunked_prefill: PositiveInt | None = Field(None, description="Chunked-prefill size (tokens).")
    args: dict[str, Any] = Field(default_factory=dict, description="Extra engine flags.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")


class PoolSpec(StrictModel):
    """One pool (prefill or decode). Every field left out takes the topology's value."""

    gpus: PoolGpus | None = Field(None, description="GPUs of one replica, e.g. 4 or 8xH200.")
    parallelism: ParallelismSpec | None = Field(
        None,
        description="tensor / pipeline / expert / data / dp_attention, as the topology's"
        " `parallelism`; default: the topology's, or all GPUs of the pool's replica as TP"
        " when the pool sets its own `gpus`.",
        examples=[{"tensor": 4}],
    )
    replicas: ReplicaSpec | None = Field(
        None, description="Replicas of this pool: a number or {min, max}.", examples=[2]
    )
    max_num_seqs: PositiveInt | None = Field(None, description="Concurrent sequences per replica.")
    context_length: PositiveInt | None = Field(
        None, description="Must equal the other pool's (SGLang decode waits forever otherwise)."
    )
    kv_cache_dtype: KvCacheDtype | None = Field(None, description="Must equal the other pool's.")
    speculative: SpeculativeSpec | None = Field(
        None, description="Speculative (MTP) settings; must equal the other pool's."
    )
    engine: PoolEngineSpec = Field(
        default_factory=PoolEngineSpec, description="Engine settings of this pool."
    )


class TransferSpec(StrictModel):
    """How KV moves from prefill to decode."""

    backend: str | None = Field(
        None,
        description="SGLang: mooncake (default), mooncake_tcp, nixl, mori. vLLM: a KV connector"
        " of its version, NixlConnector (default), MooncakeConnector, LMCacheConnectorV1, ...;"
        " ExampleConnector is vLLM's disk-based example connector, for tests and CPU runs on"
        " one host (see `shared_storage_path`).",
        examples=["mooncake", "NixlConnector"],
    )
    bootstrap_port: Port | None = Field(
        None,
        description="SGLang: the prefill server's bootstrap port (default 8998); vLLM: the"
        " NIXL side-channel port (default 5600).",
    )
    kv_load_failure_policy: str = Field(
        "fail",
        pattern="^(fail|recompute)$",
        description="vLLM: on a failed KV load, fail the request (default) or recompute it.",
    )
    shared_storage_path: str | None = Field(
        None,
        min_length=1,
        # Left out of dumps when unset, so plans of other topologies read as before.
        exclude_if=lambda value: value is None,
        description="vLLM ExampleConnector: the folder both pools write and read the KV files"
        " in (one host; nothing deletes them); default /tmp/glmctl-kv/<deployment name>.",
        examples=["/var/tmp/glmctl-kv"],
    )


class NetworkSpec(StrictModel):
    """The network the KV transfer runs over."""

    transport: Transport = Field(Transport.RDMA, description="rdma (default) or tcp.")
    ib_devices: list[str] | None = Field(
        None,
        description="RDMA devices (SGLang --disaggregation-ib-device); default: the transfer"
        " backend picks them.",
        examples=[["mlx5_0"]],
    )
    link_gbps: float | None = Field(
        None,
        gt=0,
        description="Link speed per GPU in Gb/s for the transfer-time estimate; default 400"
        " for rdma (one NDR port per GPU on HGX nodes), 100 for tcp.",
    )

    @field_validator("ib_devices", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        # `ib_devices: mlx5_0,mlx5_1` as SGLang's flag spells it.
        return (
            [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        )

    @property
    def gbps(self) -> float:
        return self.link_gbps or DEFAULT_LINK_GBPS[self.transport]


class DisaggregationSpec(StrictModel):
    """Prefill/decode disaggregation: two pools of one model, and the KV transfer between."""

    prefill: PoolSpec = Field(default_factory=PoolSpec, description="The prefill pool.")
    decode: PoolSpec = Field(default_factory=PoolSpec, description="The decode pool.")
    transfer: TransferSpec = Field(default_factory=TransferSpec, description="KV transfer.")
    network: NetworkSpec = Field(default_factory=NetworkSpec, description="Transfer network.")


def transfer_backend(spec: DisaggregationSpec, engine: str) -> str:
    """The transfer backend the pools use: the spec's, or the engine's documented default."""
    if spec.transfer.backend is not None:
        return spec.transfer.backend
    rule = transfer_rule(engine)
    if spec.network.transport is Transport.TCP and rule.tcp_backend:
        return rule.tcp_backend
    return rule.default_backend


def bootstrap_port(spec: DisaggregationSpec, engine: str) -> int:
    """SGLang's bootstrap port or vLLM's NIXL side-channel port."""
    if spec.transfer.bootstrap_port is not None:
        return spec.transfer.bootstrap_port
    return transfer_rule(engine).port


def shared_storage_path(spec: DisaggregationSpec, name: str) -> str:
    """The folder of a shared-storage connector (ExampleConnector) for deployment `name`:
    the spec's, or `SHARED_STORAGE_ROOT/<name>`."""
    return spec.transfer.shared_storage_path or f"{SHARED_STORAGE_ROOT}/{name}"


def bind_sections(namespace: dict[str, Any]) -> None:
    """Resolve the pool's references to the topology's sections (ParallelismSpec, ...).

    models.py calls this once its sections exist: the pool reuses them, and models.py
    imports this module, so they cannot be imported here at load time.
    """
    PoolSpec.model_rebuild(_types_namespace=namespace)
    DisaggregationSpec.model_rebuild(_types_namespace=namespace)
