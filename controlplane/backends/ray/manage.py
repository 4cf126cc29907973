"""status / scale / delete / preview of deployments applied by deploy.py.

`delete` is idempotent; `preview` (`glmctl plan`) starts and changes nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

from controlplane.autoscale.drain import shutdown_budget_s
from controlplane.backends.ray import cluster
from controlplane.backends.ray.apps import engine_app, router_app_name
from controlplane.backends.ray.deploy import engine_log_dir, placements_of, resolve_target
from controlplane.backends.ray.pd_replica import pools_view
from controlplane.backends.ray.records import (
    DeploymentRecord,
    delete_record,
    list_records,
    read_record,
    replica_records,
    restarts_stopped,
    write_record,
)
from controlplane.backends.ray.serve_steps import (
    Progress,
    quiet_progress,
    serve_api,
    wait_replicas,
    wait_stopped,
)
from controlplane.errors import UserError
from controlplane.local.secrets import redact_url
from controlplane.planner import PlanError, diff_plans, embedded_inventory, plan, replicas_that_fit
from controlplane.planner.inventory import Inventory, release
from controlplane.planner.models import DeploymentPlan
from controlplane.settings import get_settings

if TYPE_CHECKING:
    from controlplane.spec import Topology

PLACEMENT_RELEASE_S = 5.0


def _connected(address: str | None) -> cluster.Target | None:
    target = resolve_target(address, None)
    if target is not None:
        cluster.connect(target)
    return target


def scale(
    name: str, replicas: int, address: str | None = None, progress: Progress = quiet_progress
) -> DeploymentRecord:
    """Set a deployment's replica count (bounded by what the cluster holds).

    The count is fixed from then on: an autoscaled deployment stops autoscaling until a
    changed version of its topology is applied.
    """
    target = _connected(address)
    record = read_record(target.redis_url, name) if target else None
    if target is None or record is None:
        raise UserError(f"no deployment named `{name}` runs.", fix="see `glmctl status`.")
    current = record.deployment_plan
    group = current.group
    if group.pd:
        raise UserError(
            f"{name} is a prefill/decode deployment: `glmctl scale` sets one replica count.",
            fix="set `disaggregation.prefill.replicas` / `.decode.replicas` in the topology"
            " and `glmctl apply` it.",
        )
    gpu = None if not group.bundles[0].get("GPU") else group.gpu_type
    wait_stopped(record.app, shutdown_budget_s(group.graceful_shutdown_s), progress)
    settle = time.monotonic() + PLACEMENT_RELEASE_S
    while True:  # a replica that just stopped frees its placement group a moment later
        inventory = release(
            cluster.live_inventory(target.embedded), placements_of(record, target.redis_url)
        )
        fits = replicas_that_fit(inventory, gpu, list(group.bundles))
        if replicas <= fits or time.monotonic() > settle:
            break
        time.sleep(0.25)
    if replicas > fits:
        raise UserError(
            f"{name}: {replicas} replicas need {replicas * group.nodes * group.gpus_per_node}"
            f" {group.gpu_type} GPUs; the cluster holds {fits} replica(s)"
            f" ({inventory.gpus_free(group.gpu_type)} GPUs free counting this deployment's own).",
            fix=f"scale to at most {fits}, or add {group.gpu_type} nodes.",
        )
    serve = serve_api()
    log_dir = engine_log_dir(target)
    built = engine_app(current, target.redis_url, log_dir, num_replicas=replicas)
    serve._run(built, name=record.app, route_prefix=None, _blocking=False)
    wait_replicas(target, current, record.app, replicas, time.monotonic(), progress)
    wait_stopped(record.app, shutdown_budget_s(group.graceful_shutdown_s), progress)
    updated = record.model_copy(update={"replicas": replicas})
    write_record(target.redis_url, updated)
    return updated


def delete(name: str, address: str | None = None, keep_cluster: bool = False) -> bool:
    """Remove a deployment (idempotent: False when nothing by that name ran).

    On the embedded cluster, deleting the last deployment also stops the cluster unless
    `keep_cluster`.
    """
    target = _connected(address)
    if target is None:
        return False
    serve = serve_api()
    apps = serve.status().applications
    mine = [a for a in apps if a == router_app_name(name) or a.rsplit("-", 1)[0] == name]
    record = read_record(target.redis_url, name)
    _leave_rotation(target.redis_url, name)
    for app in sorted(mine, key=lambda a: a.endswith("-router")):  # engines first
        serve.delete(app, _blocking=True)
    delete_record(target.redis_url, name)
    if not keep_cluster:
        stop_if_idle(target)
    return bool(mine or record)


def _leave_rotation(redis_url: str, name: str) -> None:
    """Every replica of `name` out of the routers' rotation at once: each then drains its
    in-flight requests without waiting for a replacement (none comes)."""
    from controlplane.autoscale.drain import mark_all_draining
    from controlplane.store.redis import router_namespace, sync_client

    client = sync_client(redis_url)
    try:
        mark_all_draining(client, router_namespace(name))
    finally:
        client.close()


def status(address: str | None = None) -> dict[str, Any]:
    """Deployments, their replicas (ranks, nodes, GPUs, health) and the cluster's nodes."""
    target = _connected(address)
    if target is None:
        return {"cluster": None, "deployments": []}
    from ray import serve

    apps = serve.status().applications
    inventory: Inventory = cluster.live_inventory(target.embedded)
    deployments = []
    for record in list_records(target.redis_url):
        app = apps.get(record.app)
        group = record.deployment_plan.group
        deployments.append(
            {
                "name": record.name,
                "version": record.version,
                "status": str(app.status).rsplit(".", 1)[-1] if app else "MISSING",
                "engine": group.engine,
                "runtime": group.runtime,
                "model": group.served_model_name,
                "endpoint": record.router_url,
                **_replicas(target.redis_url, record),
                "restarts_stopped": restarts_stopped(target.redis_url, record.name),
                "external": _external(target.redis_url, record),
            }
        )
    return {
        "cluster": {
            "address": target.address,
            "embedded": target.embedded,
            "healed": target.healed,
            "redis_url": redact_url(target.redis_url),
            "prometheus_url": _prometheus_url() if target.embedded else None,
            "nodes": [n.model_dump() for n in inventory.nodes],
        },
        "deployments": deployments,
    }


def _replicas(redis_url: str, record: DeploymentRecord) -> dict[str, Any]:
    details = replica_records(redis_url, record.name, record.app)
    reading = _autoscale(redis_url, record)
    policy = record.deployment_plan.group.autoscaling
    bounds = (policy.min_replicas, policy.max_replicas) if policy and reading else None
    out = {
        "replicas": replica_counts(record.replicas, len(details), reading, bounds),
        "replica_details": details,
        "autoscale": reading,
    }
    pools = pools_view(record.deployment_plan, details)
    return {**out, "pools": pools} if pools else out


def replica_counts(
    applied: int,
    serving: int,
    reading: dict[str, Any] | None,
    bounds: tuple[int, int] | None,
) -> dict[str, int]:
    """What `status -o json` reports under `replicas` (pure), each key saying what it counts.

    serving: healthy replicas registered now; desired: what the autoscaler last wanted, or
    the applied / scaled count for a fixed one; min / max: the autoscaling bounds (never
    above what the cluster holds), or the fixed count twice.
    """
    if reading is None or bounds is None:
        return {"serving": serving, "desired": applied, "min": applied, "max": applied}
    desired = int(reading.get("desired", applied))
    return {"serving": serving, "desired": desired, "min": bounds[0], "max": bounds[1]}


def _external(redis_url: str, record: DeploymentRecord) -> list[dict[str, Any]]:
    """The deployment's external endpoints and their health (router/external.py)."""
    if not record.deployment_plan.router.external:
        return []
    from controlplane.router.registry import external_health
    from controlplane.store.redis import router_namespace

    return external_health(redis_url, router_namespace(record.name))


def _prometheus_url() -> str | None:
    from controlplane.backends.ray import monitor

    return monitor.prometheus_url()


def _autoscale(redis_url: str, record: DeploymentRecord) -> dict[str, Any] | None:
    """The autoscaler's last reading (wanted, running, what the cluster holds, why), or None
    for a fixed replica count."""
    if record.deployment_plan.group.autoscaling is None:
        return None
    from controlplane.autoscale.record import read_decisions
    from controlplane.store.redis import router_namespace, sync_client

    client = sync_client(redis_url)
    try:
        return read_decisions(client, router_namespace(record.name)).get(record.name)
    finally:
        client.close()


class Preview(NamedTuple):
    """What `glmctl plan` shows: the plan, its diff, whether a deployment of that name runs."""

    plan: DeploymentPlan
    diff: list[str]
    running: bool


def preview(topology: Topology, address: str | None = None) -> Preview:
    """Plan without starting or changing anything (`glmctl plan`).

    With no cluster running, plans on the embedded cluster `apply` would start.
    """
    # None: no cluster runs, or the embedded one died (a dry run starts and heals nothing)
    target = resolve_target(address, None, heal=False)
    if target is None:
        new = plan(topology, embedded_inventory(topology))
        return Preview(new, diff_plans(None, new.to_data()), running=False)
    cluster.connect(target)
    running = read_record(target.redis_url, topology.name)
    freed = placements_of(running, target.redis_url) if running else []
    live = release(cluster.live_inventory(simulated=target.embedded), freed)
    try:
        new = plan(topology, live)
    except PlanError:
        if not target.embedded:
            raise
        grown = live.nodes + embedded_inventory(topology).nodes  # what apply would add
        new = plan(topology, live.model_copy(update={"nodes": grown}))
    diff = diff_plans(running.plan if running else None, new.to_data())
    return Preview(new, diff, running=running is not None)


def stop_if_idle(target: cluster.Target) -> bool:
    """Stop the embedded cluster when no deployment is recorded (an apply that was
    declined or failed cleans up what it started). True when it stopped it."""
    if not target.embedded or list_records(target.redis_url):
        return False
    import ray

    from controlplane.backends.ray import monitor

    monitor.stop()  # the embedded Prometheus stops with the last deployment
    ray.shutdown()  # the keeper shuts Serve down gracefully (its output goes to its log)
    return cluster.stop_embedded(get_settings().state_dir)
