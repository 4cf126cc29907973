"""The prefill and decode pools of a PD topology, each resolved as a topology of its own.

`pd_pools(topology)` is pure: each pool is the topology's resolved spec with the pool's
fields laid over it, resolved again by `resolve` (so a pool is sized, planned and
launched by exactly the rules a colocated topology is). A pool that is invalid on its own
(an impossible TP for its GPUs, say) raises SpecError naming the pool.

The planner (planner/pd_plan.py) makes each pool one engine group of the deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.errors import SpecError
from controlplane.spec.disaggregation import (
    DisaggregationSpec,
    PoolSpec,
    bootstrap_port,
    transfer_backend,
)
from controlplane.spec.models import GpuSpec, ParallelismSpec, TopologySpec
from controlplane.spec.resolve import resolve
from controlplane.spec.topology import Topology

__all__ = ["PdPools", "pd_pools", "pool_topology"]

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
