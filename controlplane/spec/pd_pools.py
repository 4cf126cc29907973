"""The prefill and decode pools of a PD topology, each resolved as a topology of its own.

`pd_pools(topology)` is pure: each pool is the topology's resolved spec with the pool's
fields laid over it, resolved again by `resolve` (so a pool is sized, planned and
launched by exactly the rules a colocated topology is). A pool that is invalid on its own
(an impossible TP for its GPUs, say) raises SpecError naming the pool.

`refuse_deploy(topology, command)` is the guard of `plan`, `apply` and `render`: this
version sizes and checks PD topologies but cannot deploy them yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.errors import SpecError, UserError
from controlplane.spec.disaggregation import (
    DisaggregationSpec,
    PoolSpec,
    bootstrap_port,
    transfer_backend,
)
from controlplane.spec.models import GpuSpec, ParallelismSpec, TopologySpec
from controlplane.spec.resolve import resolve
from controlplane.spec.topology import Topology

__all__ = ["PdPools", "pd_pools", "pool_topology", "refuse_deploy"]

ROLES = ("prefill", "decode")


@dataclass(frozen=True)
class PdPools:
    """A PD topology: the whole topology, its two resolved pools and the transfer."""

    topology: Topology
    prefill: Topology
    decode: Topology
    backend: str  # SGLang transfer backend or vLLM KV connector
    port: int  # SGLang bootstrap port or vLLM NIXL side-channel port

    @property
    def spec(self) -> DisaggregationSpec:
        assert self.topology.spec.disaggregation is not None
        return self.topology.spec.disaggregation

    @property
    def gpus_per_unit(self) -> int:
        """GPUs of one prefill replica plus one decode replica (a 1P1D unit)."""
        return self.prefill.gpus_per_replica + self.decode.gpus_per_replica


def pd_pools(topology: Topology) -> PdPools | None:
    """The two pools of a PD topology, or None for a colocated one. Raises SpecError."""
    pd = topology.spec.disaggregation
    if pd is None:
        return None
    engine = topology.engine.value
    return PdPools(
        topology,
        pool_topology(topology, "prefill", pd.prefill),
        pool_topology(topology, "decode", pd.decode),
        transfer_backend(pd, engine),
        bootstrap_port(pd, engine),
    )


def pool_topology(topology: Topology, role: str, pool: PoolSpec) -> Topology:
    """`topology` with `pool`'s fields laid over it, resolved; its name is `<name>-<role>`."""
    spec = pool_spec(topology.spec, pool)
    spec.name = f"{topology.name}-{role}"
    local = topology.model if topology.spec.model_config_path is not None else None
    try:
        return resolve(spec, local, origin=f"{topology.origin} (disaggregation.{role})")
    except SpecError as exc:
        raise SpecError([f"in the {role} pool: {problem}" for problem in exc.problems]) from exc


def pool_spec(base: TopologySpec, pool: PoolSpec) -> TopologySpec:
    """A colocated spec for one pool: `base` (resolved) with the pool's fields over it."""
    spec = base.model_copy(deep=True)
    spec.disaggregation = None
    if pool.gpus is not None:
        spec.gpus = GpuSpec(
            type=pool.gpus.type or base.gpus.type,
            count=pool.gpus.count,
            per_node=base.gpus.per_node,
            nodes=pool.gpus.nodes,
        )
        # The base layout was filled in for other GPUs: start from the defaults.
        spec.parallelism = pool.parallelism or ParallelismSpec()
    elif pool.parallelism is not None:
        spec.parallelism = pool.parallelism
    for field in ("replicas", "max_num_seqs", "context_length", "kv_cache_dtype", "speculative"):
        value = getattr(pool, field)
        if value is not None:
            setattr(
                spec, field, value.model_copy(deep=True) if hasattr(value, "model_copy") else value
            )
    engine = spec.engine
    for field in ("version", "mem_fraction", "chunked_prefill"):
        value = getattr(pool.engine, field)
        if value is not None:
            setattr(engine, field, value)
    engine.args = {**engine.args, **pool.engine.args}
    engine.env = {**engine.env, **pool.engine.env}
    return spec


def refuse_deploy(topology: Topology, command: str) -> None:
    """Raise a UserError when `topology` is a PD topology: `command` cannot run it yet."""
    if topology.spec.disaggregation is None:
        return
    raise UserError(
        f"{topology.origin}: `glmctl {command}` cannot run a prefill/decode (PD) topology yet."
        " This version sizes and checks PD topologies (both pools, the KV transfer, the"
        " combinations the engines refuse) but cannot plan, render or deploy their pools.",
        fix=f"run `glmctl capacity {topology.origin}` to size and check it; to serve now,"
        " remove the `disaggregation:` section (a colocated topology of the same model and"
        " GPUs), or launch the pools by hand with the commands in"
        " docs/guides/disaggregation.md.",
    )
