"""The Serve-side steps of an apply (deploy.py decides which to take, in what order).

Start the router app, start or resize an engine app, wait for replicas to be healthy or to
finish stopping, and replace a running version one replica at a time (`roll`). Nothing here
plans or reads the topology: each step gets the plan(s) and the target it acts on. A step
that gives up raises `ApplyFailed`; removing what the apply started is the caller's job.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from controlplane.autoscale.drain import shutdown_budget_s
from controlplane.backends.ray import cluster
from controlplane.backends.ray.apps import engine_app, router_app, router_app_name
from controlplane.backends.ray.failures import first_cause
from controlplane.backends.ray.loopback import LOOPBACK
from controlplane.backends.ray.records import DeploymentRecord, replica_records
from controlplane.errors import UserError
from controlplane.planner import replicas_that_fit
from controlplane.planner.models import DeploymentPlan

Progress = Callable[[str, int, int], None]  # (phase, done, total)
PLACEMENT_SLACK_S = 30.0  # scheduling a placement group before the engine's own start-up
ROUTER_START_S = 60.0
ROOM_WAIT_S = 15.0  # a stopped replica's placement group is released shortly after it stops


class ApplyFailed(UserError):
    """The new version did not become healthy; it was removed, the old one still serves."""


def quiet_progress(phase: str, done: int, total: int) -> None:
    """A `Progress` that reports nothing."""


def preferred_or_free_port(preferred: int) -> int:
    """`preferred` when it is free on the loopback address, else any free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    from controlplane.local.ports import free_port

    return free_port()


def serve_api() -> Any:
    """`ray.serve`, started on the connected cluster (idempotent; no HTTP proxy)."""
    import logging

    from ray import serve

    serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1"})
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # Serve resets it on start
    return serve


def ensure_router(
    plan: DeploymentPlan, running: DeploymentRecord | None, target: cluster.Target
) -> tuple[str, int, bool]:
    """Start the deployment's router app unless the running one already fits the plan.

    Returns (app name, port, whether this call started it)."""
    serve = serve_api()
    app = router_app_name(plan.name)
    apps = serve.status().applications
    if running and app in apps and running.deployment_plan.router == plan.router:
        return app, running.router_port, False
    port = running.router_port if running else plan.router.port
    if target.embedded and not running:
        port = preferred_or_free_port(port)
    host = LOOPBACK if target.embedded else (plan.router.host or "")
    built = router_app(plan, target.redis_url, port, host)
    serve._run(built, name=app, route_prefix=None, _blocking=False)  # starts beside the engines
    return app, port, True


def wait_app_running(app: str, timeout: float) -> None:
    """Until Serve reports `app` RUNNING; ApplyFailed when it fails or takes too long."""
    from ray import serve

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = serve.status().applications.get(app)
        state = str(status.status) if status else ""
        if state.endswith("RUNNING"):
            return
        if state.endswith("DEPLOY_FAILED") and status is not None:
            raise ApplyFailed(f"{app} failed to start: {_causes(status)}"[:4000])
        time.sleep(0.2)
    raise ApplyFailed(f"{app} did not start in {timeout:.0f} s.")


def _causes(status: Any) -> str:
    """The first cause of each failed deployment of a Serve app status, one line each."""
    messages = [d.message for d in status.deployments.values() if d.message]
    return " ".join(first_cause(m) for m in messages or [status.message])


def version_fits(plan: DeploymentPlan, embedded: bool) -> bool:
    """True when every group's initial replicas fit the cluster now, side by side (a PD
    plan's pools one after the other, planner/pd_plan.py `reserve`)."""
    from controlplane.planner.pd_plan import reserve

    inventory = cluster.live_inventory(simulated=embedded)
    for group in plan.groups:
        gpu = None if not group.bundles[0].get("GPU") else group.gpu_type
        if replicas_that_fit(inventory, gpu, list(group.bundles)) < group.replicas.initial:
            return False
        inventory = reserve(inventory, group, group.replicas.initial)
    return True


def room(plan: DeploymentPlan, embedded: bool) -> int:
    """Replicas of `plan` the cluster can place now."""
    group = plan.group
    gpu = None if not group.bundles[0].get("GPU") else group.gpu_type
    return replicas_that_fit(cluster.live_inventory(simulated=embedded), gpu, list(group.bundles))


def wait_replicas(
    target: cluster.Target,
    new: DeploymentPlan,
    app: str,
    wanted: int,
    started: float,
    progress: Progress,
) -> None:
    """Wait until `wanted` replicas of `app` report healthy; ApplyFailed on a failed start or
    after the start-up limit (the caller removes what it started)."""
    from ray import serve

    timeout = new.group.health.startup_timeout_s + PLACEMENT_SLACK_S
    while time.monotonic() - started < timeout:
        ready = len(replica_records(target.redis_url, new.name, app))
        progress("replicas healthy", ready, wanted)
        if ready == wanted:
            return
        status = serve.status().applications.get(app)
        if status is not None and str(status.status).endswith("DEPLOY_FAILED"):
            raise ApplyFailed(
                f"{new.name}: the new version failed to start; it was removed and any previous"
                f" version keeps serving. {_causes(status)}"[:4000],
                fix="read the engine log named above; `glmctl plan FILE` shows the command.",
            )
        time.sleep(0.25)
    raise ApplyFailed(
        f"{new.name}: {len(replica_records(target.redis_url, new.name, app))} of {wanted}"
        f" replica(s) healthy after {timeout:.0f} s (start-up limit"
        f" {new.group.health.startup_timeout_s:.0f} s + {PLACEMENT_SLACK_S:.0f} s placement);"
        " the new version was removed and any previous version keeps serving.",
        fix="check free GPUs with `glmctl status` and the engine logs under the state dir.",
    )


def roll(
    running: DeploymentRecord,
    new: DeploymentPlan,
    target: cluster.Target,
    app: str,
    log_dir: str,
    progress: Progress,
) -> None:
    """Replace the running version one replica at a time when the cluster cannot hold the
    whole new version beside it: add a new replica whenever one fits (surge), else drain one
    old replica first. Old replicas serve until new ones are healthy; only a deployment of
    one replica with no room for a second has a gap (its replica waits PEER_WAIT_S for a
    peer, then drains): `prepare_apply` measures it (`Prepared.gap`), and `glmctl apply`
    refuses it without --allow-downtime (autoscale/rollout.py)."""
    url, old_plan = target.redis_url, running.deployment_plan
    total = new.group.replicas.initial
    old = len(replica_records(url, new.name, running.app))
    fresh = 0
    while fresh < total or old > 0:
        if fresh < total and room(new, target.embedded) > 0:
            fresh += 1
            progress(f"rolling: new replica {fresh}/{total}", 0, 1)
            built = engine_app(new, url, log_dir, num_replicas=fresh)
            serve_api()._run(built, name=app, route_prefix=None, _blocking=False)
            wait_replicas(target, new, app, fresh, time.monotonic(), progress)
        elif old > 0:
            old -= 1
            progress(f"rolling: old replicas left {old}", 0, 1)
            if old == 0:  # Serve wants at least one replica: the last leaves with its app
                serve_api().delete(running.app, _blocking=True)
            else:
                built = engine_app(old_plan, url, log_dir, num_replicas=old)
                serve_api()._run(built, name=running.app, route_prefix=None, _blocking=False)
                wait_stopped(running.app, shutdown_budget_s(old_plan.group.graceful_shutdown_s))
            _wait_room(new, target.embedded, ROOM_WAIT_S)  # its GPUs free a moment later
        else:
            raise ApplyFailed(
                f"{new.name}: a replica of the new version does not fit even with the old"
                " version gone; the old version was restored.",
                fix="`glmctl plan FILE` shows what the new version needs.",
            )
    if new.group.autoscaling is not None:  # back under the autoscaler at the count reached
        serve_api()._run(engine_app(new, url, log_dir), name=app, route_prefix=None,
                         _blocking=False)  # fmt: skip


def _wait_room(plan: DeploymentPlan, embedded: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while room(plan, embedded) == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def wait_stopped(app: str, timeout: float, progress: Progress = quiet_progress) -> None:
    """Until no replica of `app` is still stopping (draining, then freeing its GPUs)."""
    from ray import serve

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = serve.status().applications.get(app)
        states = [d.replica_states for d in status.deployments.values()] if status else []
        stopping = sum(n for s in states for k, n in s.items() if str(k).endswith("STOPPING"))
        progress("replicas draining", 0, stopping)
        if stopping == 0:
            return
        time.sleep(0.25)
