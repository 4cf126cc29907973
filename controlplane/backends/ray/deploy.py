"""apply on a Ray cluster (embedded by default, or `--address`); see manage.py for the rest.

apply = prepare (target, inventory, plan, diff against what runs) -> the caller confirms ->
execute: the new version deploys as its own Serve app beside the running one, and only
when every new replica is healthy is the record switched and the old app deleted. A
failure (placement, engine not healthy in time) deletes what this apply started and leaves
the previous version serving. `delete` is idempotent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controlplane.autoscale.rollout import UpdateGap, update_gap
from controlplane.backends.ray import cluster
from controlplane.backends.ray.apps import engine_app, engine_app_name
from controlplane.backends.ray.keeper import gcs_reachable
from controlplane.backends.ray.pd_replica import group_of
from controlplane.backends.ray.records import (
    DeploymentRecord,
    clear_failures,
    new_record,
    read_record,
    replica_records,
    router_url,
    write_record,
)
from controlplane.backends.ray.serve_steps import (
    ROUTER_START_S,
    Progress,
    ensure_router,
    quiet_progress,
    roll,
    room,
    serve_api,
    version_fits,
    wait_app_running,
    wait_replicas,
)
from controlplane.backends.ray.serve_steps import ApplyFailed as ApplyFailed  # re-exported
from controlplane.errors import UserError
from controlplane.planner import PlanError, diff_plans, embedded_inventory, plan
from controlplane.planner.inventory import release
from controlplane.planner.models import DeploymentPlan
from controlplane.settings import get_settings

if TYPE_CHECKING:
    from controlplane.spec import Topology

CLUSTER_LOG_DIR = "/tmp/glmctl-logs"  # on each node of a cluster given by --address


@dataclass
class Prepared:
    target: cluster.Target
    plan: DeploymentPlan
    running: DeploymentRecord | None
    diff: list[str] = field(default_factory=list)
    gap: UpdateGap | None = None  # no replica serves for a while during this update

    @property
    def unchanged(self) -> bool:
        return self.running is not None and self.running.version == self.plan.digest()


def resolve_target(
    address: str | None, topology: Topology | None, heal: bool = True
) -> cluster.Target | None:
    """The cluster to use; starts the embedded one for `topology` when none runs, and
    restarts it (same nodes, `healed=True`) when its Ray died under a live keeper. With
    `heal=False` a dead embedded cluster counts as none (a dry run starts nothing).

    A cluster given by `address` / RAY_ADDRESS keeps router state in GLMCTL_REDIS_URL, or,
    when that is unset, in a Redis glmctl starts on its head (head_redis.py)."""
    settings = get_settings()
    address = address or settings.ray_address
    if address:
        if settings.redis_url:
            redis_url = settings.redis_url_with_password() or settings.redis_url
            return cluster.Target(address, redis_url, embedded=False)
        from controlplane.backends.ray.head_redis import head_redis_url

        cluster.connect(cluster.Target(address, "", embedded=False))
        return cluster.Target(address, head_redis_url(), embedded=False)
    state = cluster.embedded_state(settings.state_dir)
    healed = False
    if state is not None and not gcs_reachable(state.address):
        if not heal:
            return None
        state, healed = cluster.heal_embedded(settings.state_dir, state, settings.redis_url), True
    if state is None:
        if topology is None:
            return None
        nodes = cluster.node_specs(list(embedded_inventory(topology).nodes))
        state = cluster.start_embedded(
            settings.state_dir, nodes, settings.redis_url_with_password()
        )
    return cluster.Target(
        state.address, state.redis_url, embedded=True, tmpdir=state.tmpdir, healed=healed
    )


def engine_log_dir(target: cluster.Target) -> str:
    """Where ranks write engine logs: the state dir on the embedded cluster (this machine),
    else a folder on each node of the cluster (glmctl's machine may not be one)."""
    if target.embedded:
        return str(get_settings().state_dir / "logs")
    return CLUSTER_LOG_DIR


def placements_of(record: DeploymentRecord, redis_url: str) -> list[tuple[str, dict[str, float]]]:
    """(node id, bundle) of every rank the deployment holds now (freed when re-planning it)."""
    plan = record.deployment_plan
    return [
        (rank["node_id"], dict(group_of(plan, replica).bundles[rank["rank"]]))
        for replica in replica_records(redis_url, record.name, record.app)
        for rank in replica["ranks"]
    ]


def _plan_with_growth(
    topology: Topology, target: cluster.Target, freed: list[Any]
) -> DeploymentPlan:
    inventory = release(cluster.live_inventory(simulated=target.embedded), freed)
    try:
        return plan(topology, inventory)
    except PlanError:
        if not target.embedded:
            raise
    _grow(topology, target)
    return plan(topology, release(cluster.live_inventory(simulated=True), freed))


def _grow(topology: Topology, target: cluster.Target) -> None:
    """Add the simulated nodes `topology` needs on its own to the embedded cluster."""
    nodes = cluster.node_specs(list(embedded_inventory(topology).nodes))
    cluster.add_embedded_nodes(get_settings().state_dir, nodes)
    _wait_inventory(target, topology)


def _wait_inventory(target: cluster.Target, topology: Topology, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.live_inventory(simulated=True).gpus_free(topology.gpu.name) > 0:
            return
        time.sleep(0.2)


def prepare_apply(topology: Topology, address: str | None = None) -> Prepared:
    """Connect, read what runs, plan against the live inventory, diff.

    Deploys nothing, but on the embedded cluster it starts the cluster when none runs and
    adds the simulated nodes the plan needs (a declined apply undoes that: `stop_if_idle`).
    """
    target = resolve_target(address, topology)
    assert target is not None
    cluster.connect(target)
    running = read_record(target.redis_url, topology.name)
    freed = placements_of(running, target.redis_url) if running else []
    new = _plan_with_growth(topology, target, freed)
    _check_router_auth(new, target)
    _check_external_keys(new, target)
    prepared = Prepared(
        target, new, running, diff_plans(running.plan if running else None, new.to_data())
    )
    prepared.gap = _update_gap(prepared, topology)
    return prepared


def _update_gap(prepared: Prepared, topology: Topology) -> UpdateGap | None:
    """The serving gap this update would have (autoscale/rollout.py), read before any
    change: the old version's serving replicas and the room for a new one now."""
    running, new, target = prepared.running, prepared.plan, prepared.target
    if running is None or prepared.unchanged:
        return None
    old = len(replica_records(target.redis_url, new.name, running.app))
    return update_gap(
        old_serving=old,
        room_for_new=room(new, target.embedded),
        can_grow=target.embedded and topology.spec.cluster.nodes is None,
        drain_s=running.deployment_plan.group.graceful_shutdown_s,
        startup_s=new.group.health.startup_timeout_s,
    )


def _check_router_auth(plan: DeploymentPlan, target: cluster.Target) -> None:
    """On a cluster given by --address the router listens where other machines reach it and
    refuses to start without an API key (router/auth.py): say so before anything starts."""
    if target.embedded:
        return
    from controlplane.router.auth import refuse_open_bind
    from controlplane.router.keys import count_keys
    from controlplane.store.redis import router_namespace

    keys = count_keys(target.redis_url, router_namespace(plan.name))
    refuse_open_bind(plan.router.auth, plan.router.host or "the head node's address", keys)


def _check_external_keys(plan: DeploymentPlan, target: cluster.Target) -> None:
    """On the embedded cluster, every external endpoint's key must be where its reference
    says before anything starts; `{env: NAME}` keys are handed to its router in owner-only
    files (the cluster's processes do not share this shell's environment). On a cluster
    given by --address the router reads them on the head node (README: External)."""
    if not target.embedded or not plan.router.external:
        return
    from controlplane.router.external import (
        ExternalEndpoint,
        default_secrets_dir,
        resolve_key,
        stash_env_key,
    )
    from controlplane.settings import environment_value

    folder = default_secrets_dir()
    for item in plan.router.external:
        endpoint = ExternalEndpoint.from_dict(item.model_dump())
        fresh = environment_value(endpoint.key_env) if endpoint.key_env else None
        if fresh is not None:  # this shell's value wins over one an earlier apply left
            stash_env_key(folder, endpoint.key_env, fresh)
        else:
            resolve_key(endpoint, folder)  # UserError naming the reference when missing


def _surges(prepared: Prepared, topology: Topology) -> bool:
    """True: the new version fits beside the running one (blue/green). False: replace the
    replicas one at a time (serve_steps.roll). An embedded cluster grows for the surge unless the
    topology pins its size (`cluster.nodes`)."""
    if prepared.running is None:
        return True
    if version_fits(prepared.plan, prepared.target.embedded):
        return True
    if prepared.target.embedded and topology.spec.cluster.nodes is None:
        _grow(topology, prepared.target)
        return True
    if prepared.plan.group.pd:
        raise UserError(
            f"{topology.name}: the new version of this prefill/decode deployment does not fit"
            " beside the running one; PD deployments update blue/green only (both pools).",
            fix="free or add GPUs for both pools (`glmctl status`), or `glmctl delete` it"
            " and apply again.",
        )
    return False


def check_drift(prepared: Prepared, topology: Topology) -> None:
    """Refuse when the cluster or the running version changed since the plan was shown."""
    target = prepared.target
    running = read_record(target.redis_url, topology.name)
    if (running.version if running else None) != (
        prepared.running.version if prepared.running else None
    ):
        raise UserError(
            f"{topology.name} was changed by someone else since the plan was shown.",
            fix="run `glmctl apply` again to see the new diff (or pass --force).",
        )
    freed = placements_of(running, target.redis_url) if running else []
    try:
        now = plan(topology, release(cluster.live_inventory(target.embedded), freed))
    except PlanError as exc:
        raise UserError(f"the cluster changed since the plan was shown: {exc}") from exc
    if now.digest() != prepared.plan.digest():
        changes = "; ".join(diff_plans(prepared.plan.to_data(), now.to_data())[:5])
        raise UserError(
            f"the cluster changed since the plan was shown ({changes}).",
            fix="run `glmctl apply` again to see the new plan (or pass --force).",
        )


def execute_apply(
    prepared: Prepared, topology: Topology, progress: Progress = quiet_progress, force: bool = True
) -> DeploymentRecord:
    """Deploy the plan beside what runs, wait until healthy, switch, retire the old version.

    With `force=False`, first re-plan and refuse if anything drifted since `prepare_apply`.
    Every apply clears the deployment's replica failures and a report that stopped its
    restarts (autoscale/restarts.py): Serve's next try of a replica starts its engine.
    """
    new, running, target = prepared.plan, prepared.running, prepared.target
    clear_failures(target.redis_url, new.name)
    if prepared.unchanged and running is not None:
        return running
    if not force:
        check_drift(prepared, topology)
    surge = _surges(prepared, topology)
    router, port, router_started = ensure_router(new, running, target)
    app = engine_app_name(new)
    log_dir = engine_log_dir(target)
    try:
        _start_new_version(prepared, app, log_dir, surge, progress)
        progress("router", 0, 1)
        wait_app_running(router, ROUTER_START_S)
        progress("router", 1, 1)
    except BaseException:
        serve = serve_api()
        serve.delete(app, _blocking=True)
        if running is not None and not surge:  # the old version back to its own count
            serve._run(engine_app(running.deployment_plan, target.redis_url, log_dir),
                       name=running.app, route_prefix=None, _blocking=False)  # fmt: skip
        if router_started and running is None:
            serve.delete(router, _blocking=True)
        raise
    return _switch(prepared, app, router, port, progress)


def _start_new_version(
    prepared: Prepared, app: str, log_dir: str, surge: bool, progress: Progress
) -> None:
    """Bring up the new version's replicas: all at once beside the old (surge), else
    one at a time in its place (serve_steps.roll). ApplyFailed when they do not get healthy."""
    new, running, target = prepared.plan, prepared.running, prepared.target
    if not surge:
        assert running is not None  # _surges is True when nothing runs
        roll(running, new, target, app, log_dir, progress)
        return
    started = time.monotonic()
    serve_api()._run(engine_app(new, target.redis_url, log_dir), name=app, route_prefix=None,
                     _blocking=False)  # fmt: skip
    wait_replicas(target, new, app, new.initial_replicas, started, progress)


def _switch(
    prepared: Prepared, app: str, router: str, port: int, progress: Progress
) -> DeploymentRecord:
    """The new version is healthy: record it as the one serving, retire the old app."""
    new, running, target = prepared.plan, prepared.running, prepared.target
    url = router_url(target.redis_url, new.name)
    record = new_record(new, app, router, port, new.initial_replicas, url=url)
    write_record(target.redis_url, record)
    if target.embedded:  # Prometheus follows the registry from now on (observe agent)
        from controlplane.backends.ray import monitor

        monitor.ensure_quietly(target.redis_url)
    serve = serve_api()
    if running is not None and running.app != app and running.app in serve.status().applications:
        progress("retire old version", 0, 1)
        serve.delete(running.app, _blocking=True)
        progress("retire old version", 1, 1)
    return record
