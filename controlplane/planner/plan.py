"""`colocated_plan(topology, inventory) -> DeploymentPlan`: pure (no I/O, inputs never
mutated); `controlplane.planner.plan` (deployment.py) also plans PD topologies with it.

Steps: capacity figures -> bundles (one per node a replica spans) -> how many replicas the
inventory holds -> replica bounds (never above that) -> each node rank's command -> router,
health checks, autoscaling. Anything impossible raises `PlanError` with numbers and a fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from controlplane.capacity.performance import performance_model
from controlplane.catalog.gpus import GIB
from controlplane.engines import LaunchCommand, LaunchContext, build_command, profile_for
from controlplane.engines.kv_events_args import precise_settings
from controlplane.engines.simulator import DEFAULT_FLAVOR
from controlplane.errors import UserError
from controlplane.local.cpu import targets_cpu
from controlplane.planner.capacity import CapacityFigures, capacity_figures
from controlplane.planner.fit import replicas_that_fit
from controlplane.planner.inventory import Inventory, accelerator_resource
from controlplane.planner.models import (
    SIM_RUNTIME,
    AutoscalingPlan,
    DeploymentPlan,
    EngineGroupPlan,
    ExternalPlan,
    HealthCheck,
    RankPlan,
    ReplicaBounds,
    RouterPlan,
)
from controlplane.spec.router import RouterAuth

if TYPE_CHECKING:
    from controlplane.spec import Topology

# Ray accounting only (engines use what they need): the Serve replica actor in bundle 0 and
# one worker actor per node rank that starts and watches the engine process.
REPLICA_CPUS = 0.1
WORKER_CPUS = 1.0
# A fractional claim on the GPU-type resource pins a bundle to nodes of that type.
ACCELERATOR_CLAIM = 0.001
# Time for a replica to become healthy: the simulator starts in seconds; a real engine
# loads up to ~0.7 TB of weights and captures CUDA graphs (tens of minutes on cold disks).
SIM_STARTUP_TIMEOUT_S = 60.0
ENGINE_STARTUP_TIMEOUT_S = 1800.0
# Longest drain of a leaving replica: llm-d's wide-EP DeepSeek-R1 guide allows 300 s for its
# longest request (llm-d#1653); Ray Serve's own default is 20 s (operations-anchors.md, A).
DRAIN_CAP_S = 300.0
DRAIN_FLOOR_S = 20.0  # Ray Serve's graceful_shutdown_timeout_s default: never drain for less


class PlanError(UserError):
    """The topology cannot be placed on the inventory."""


def colocated_plan(
    topology: Topology,
    inventory: Inventory,
    capacity: CapacityFigures | None = None,
) -> DeploymentPlan:
    """Place colocated `topology` on `inventory`; raises PlanError when it cannot.
    `controlplane.planner.plan` dispatches here, or for a PD topology to pd_plan.py."""
    figures = capacity or capacity_figures(topology)
    require_fit(topology, figures)
    group = engine_group(topology, inventory, figures)
    return DeploymentPlan(
        name=topology.name,
        origin=topology.origin,
        spec=topology.spec.model_dump(mode="json", by_alias=True),
        groups=(group,),
        router=router_plan(topology, group.simulated),
        capacity={**figures.summary, "source": figures.source},
        warnings=plan_warnings(topology, [(topology, group)]),
    )


def require_fit(topology: Topology, figures: CapacityFigures) -> None:
    """PlanError when one replica of `topology` does not fit its GPUs."""
    if not figures.fits:
        raise PlanError(
            f"{topology.name}: one replica does not fit its GPUs. {figures.problem}",
            fix="run `glmctl capacity FILE` for the numbers and a layout that fits.",
        )


def plan_warnings(
    topology: Topology, groups: list[tuple[Topology, EngineGroupPlan]]
) -> tuple[str, ...]:
    """The topology's warnings, each group's lowered replicas.max, an open router."""
    warnings = list(topology.warnings)
    for pool, group in groups:
        spec_max = pool.spec.replicas.max or 1
        if group.replicas.max < spec_max:
            what = f"{group.pd} pool " if group.pd else ""
            warnings.append(
                f"{what}replicas.max lowered from {spec_max} to {group.replicas.max}: the cluster"
                f" holds {group.replicas.fits} replica(s) of {pool.gpus_per_replica} GPUs."
            )
    if topology.spec.router.auth == RouterAuth.NONE:
        warnings.append(
            "router.auth is `none`: anyone who reaches the router's port can use the model;"
            " use api_keys (`glmctl keys create`) unless the network in front guards it."
        )
    return tuple(warnings)


def router_plan(topology: Topology, simulated: bool) -> RouterPlan:
    """The router of `topology` (one per deployment, colocated or PD); `simulated`: its
    engines are the simulator (precise_prefix tokenizes as the simulator does)."""
    router = topology.spec.router
    return RouterPlan(
        policy=router.policy.value,
        processes=router.replicas,
        port=router.port,
        host=router.host,
        max_queue_per_endpoint=router.max_queue_per_endpoint,
        session_header=router.session_header,
        auth=router.auth.value,
        limits=router.limits.model_dump(mode="json"),
        external=external_plans(topology),
        overflow_at=router.overflow.saturated_at or 0 if router.overflow else 0,
        precise=precise_settings(topology, simulated),
    )


def external_plans(topology: Topology) -> tuple[ExternalPlan, ...]:
    """The topology's external endpoints for the router (key references only)."""
    overflow = topology.spec.router.overflow
    targets = set(overflow.to) if overflow else set()
    return tuple(
        ExternalPlan(
            name=e.name,
            base_url=e.base_url,
            model=topology.served_model_name,
            upstream_model=e.model,
            role="overflow" if e.name in targets else "pool",
            capacity=e.capacity,
            health_path=e.health_path,
            key_env=(e.key_ref.env or "") if e.key_ref else "",
            key_secret=(e.key_ref.secret or "") if e.key_ref else "",
        )
        for e in topology.spec.external
    )


def _bundles(topology: Topology, inventory: Inventory, host_ram: float) -> list[dict[str, float]]:
    memory = inventory.memory_amount(host_ram)
    bundles: list[dict[str, float]] = []
    for rank in range(topology.nodes):
        bundle: dict[str, float] = {"CPU": WORKER_CPUS + (REPLICA_CPUS if rank == 0 else 0.0)}
        if not targets_cpu(topology):
            bundle["GPU"] = float(topology.gpus_per_node)
            bundle[accelerator_resource(topology.gpu.name)] = ACCELERATOR_CLAIM
        if memory > 0:
            bundle[inventory.memory_resource] = memory
        bundles.append(bundle)
    return bundles


# One node rank's command: (context, simulate) -> the command (None: the rank runs nothing).
RankCommand = Callable[[LaunchContext, bool], LaunchCommand | None]


def engine_group(
    topology: Topology,
    inventory: Inventory,
    figures: CapacityFigures,
    name: str = "engine",
    pd: str = "",
    command: RankCommand | None = None,
) -> EngineGroupPlan:
    """One engine group of `topology` on `inventory`: a colocated topology's only group, or
    one PD pool's (`name`, `pd` and its `command` builder given by planner/pd_plan.py)."""
    bundles = _bundles(topology, inventory, figures.host_ram_per_node_bytes)
    gpu_type = None if targets_cpu(topology) else topology.gpu.name
    fits = replicas_that_fit(inventory, gpu_type, bundles)
    bounds = _bounds(topology, inventory, fits, bundles)
    profile = profile_for(topology.engine)
    simulate = profile.always_simulated or (inventory.simulated_gpus and not targets_cpu(topology))
    return EngineGroupPlan(
        name=name,
        engine=profile.name,
        runtime=SIM_RUNTIME if simulate else profile.name,
        flavor=profile.planned_flavor(topology, DEFAULT_FLAVOR),
        engine_version=topology.spec.engine.version or profile.target_version,
        model=topology.model.name,
        served_model_name=topology.served_model_name,
        gpu_type=topology.gpu.name,
        nodes=topology.nodes,
        gpus_per_node=topology.gpus_per_node,
        bundles=tuple(bundles),
        strategy="STRICT_PACK" if topology.nodes == 1 else "STRICT_SPREAD",
        replica_actor={"CPU": REPLICA_CPUS},
        worker_actor={"CPU": WORKER_CPUS},
        ranks=_ranks(topology, figures.mem_fraction, simulate, drain_seconds(topology), command),
        mem_fraction=figures.mem_fraction,
        replicas=bounds,
        autoscaling=_autoscaling(topology, bounds),
        health=HealthCheck(
            startup_timeout_s=SIM_STARTUP_TIMEOUT_S if simulate else ENGINE_STARTUP_TIMEOUT_S
        ),
        max_ongoing_requests=topology.spec.router.max_queue_per_endpoint,
        graceful_shutdown_s=drain_seconds(topology),
        pd=pd,
    )


def _bounds(
    topology: Topology, inventory: Inventory, fits: int, bundles: list[dict[str, float]]
) -> ReplicaBounds:
    r = topology.spec.replicas
    initial = r.initial if r.initial is not None else r.min
    need = max(initial, r.min, 1)
    if fits < need:
        raise PlanError(_placement_problem(topology, inventory, fits, need, bundles[-1]))
    top = min(r.max or 1, fits)
    return ReplicaBounds(initial=min(initial, top), min=min(r.min, top), max=top, fits=fits)


def _placement_problem(
    topology: Topology, inventory: Inventory, fits: int, need: int, bundle: dict[str, float]
) -> str:
    gpu = topology.gpu.name
    nodes = [n for n in inventory.nodes if targets_cpu(topology) or n.gpu_type == gpu]
    free = ", ".join(
        f"{n.node_id[:12]}: {n.gpus_free}/{n.gpus_total} GPUs free,"
        f" {n.memory_bytes / GIB:.0f} GiB RAM"
        for n in nodes
    )
    mem = bundle.get(inventory.memory_resource, 0.0)
    unit = "GiB" if inventory.memory_resource != "memory" else "bytes"
    return (
        f"{topology.name}: {need} replica(s) need {need * topology.nodes} node(s) of {gpu} each"
        f" with {topology.gpus_per_node} free GPUs and {mem:.0f} {unit} of host RAM"
        f" ({inventory.memory_resource}); the cluster holds {fits} such replica(s)"
        f" [{free or f'no {gpu} nodes'}]. To fix: add {gpu} nodes, free GPUs"
        " (`glmctl status`, `glmctl delete NAME`), or lower `replicas`."
    )


def _ranks(
    topology: Topology,
    mem_fraction: float | None,
    simulate: bool,
    drain_s: float,
    command: RankCommand | None = None,
) -> tuple[RankPlan, ...]:
    """Each node rank's command; the engines' own shutdown timeout is the drain timeout,
    the number Serve's graceful shutdown is set from too."""
    ranks = []
    for rank in range(topology.nodes):
        context = LaunchContext(
            rank, topology.nodes, mem_fraction=mem_fraction, shutdown_timeout_s=drain_s
        )
        if command is None:
            run = build_command(topology, context, simulate=simulate)
            real = build_command(topology, context) if simulate else run
        else:
            run = command(context, simulate)
            real = command(context, False) if simulate else run
        ranks.append(
            RankPlan(
                rank=rank,
                argv=run.argv if run else (),
                env=dict(run.env) if run else {},
                serves_http=bool(run and run.serves_http),
                engine_argv=real.argv if real and simulate else (),
            )
        )
    return tuple(ranks)


def _autoscaling(topology: Topology, bounds: ReplicaBounds) -> AutoscalingPlan | None:
    auto = topology.spec.autoscaling
    if auto is None or bounds.min == bounds.max:
        return None
    return AutoscalingPlan(
        min_replicas=bounds.min,
        max_replicas=bounds.max,
        initial_replicas=bounds.initial,
        ttft_slo_s=topology.spec.slo.ttft_p99,
        itl_slo_s=topology.spec.slo.itl_p99,  # the decode pool's policy (autoscale/roles.py)
        **auto.model_dump(),
    )


def drain_seconds(topology: Topology) -> float:
    """How long a leaving replica waits for its in-flight requests: `replicas.drain_timeout`,
    else the longest output (the whole context) at the modelled per-sequence decode speed
    with a full batch, within [DRAIN_FLOOR_S, DRAIN_CAP_S]; a simulated engine runs
    `time_scale` times faster, so its drain is that much shorter."""
    given = topology.spec.replicas.drain_timeout
    if given is not None:
        return float(given)
    batch = topology.spec.max_num_seqs
    per_sequence = performance_model(topology).decode_tokens_per_second(
        batch, topology.context_length // 2
    ) / max(batch, 1)
    longest = topology.context_length / per_sequence if per_sequence > 0 else DRAIN_CAP_S
    bounded = min(max(longest, DRAIN_FLOOR_S), DRAIN_CAP_S)
    return round(bounded / topology.spec.simulation.time_scale, 1)
