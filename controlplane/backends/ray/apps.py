"""Serve deployment options from a plan (pure) and the applications built with them.

`engine_options` / `router_options` are what both `apply` and the rendered Ray Serve config
(`glmctl render --target ray`) use, so a rendered config and a live apply agree.
`engine_builder` / `router_builder` are the config's `import_path` entry points.
"""

from __future__ import annotations

from typing import Any

from controlplane.autoscale.drain import shutdown_budget_s
from controlplane.autoscale.serve_policy import serve_autoscaling_config
from controlplane.planner.models import DeploymentPlan, EngineGroupPlan
from controlplane.store.redis import router_namespace

ENGINE_DEPLOYMENT = "EngineGroup"
ROUTER_DEPLOYMENT = "RouterHost"
CONSTRUCTOR_RETRIES = 1  # a replica that fails to start fails the apply (no endless retries)
ROUTER_ACTOR = {"num_cpus": 0.1, "resources": {"node:__internal_head__": 0.001}}


def engine_app_name(plan: DeploymentPlan) -> str:
    """Serve application of one plan version: a new version deploys beside the old one."""
    return f"{plan.name}-{plan.digest()}"


def router_app_name(name: str) -> str:
    return f"{name}-router"


def deployment_name(group: EngineGroupPlan) -> str:
    """The Serve deployment of an engine group: `EngineGroup`, or `EngineGroup-prefill` /
    `EngineGroup-decode` for the pools of a PD plan (both in the plan's one app)."""
    return f"{ENGINE_DEPLOYMENT}-{group.pd}" if group.pd else ENGINE_DEPLOYMENT


def engine_options(
    plan: DeploymentPlan,
    num_replicas: int | None = None,
    redis_url: str = "",
    group: EngineGroupPlan | None = None,
) -> dict[str, Any]:
    """Ray Serve deployment options of an engine group (pure; default: the plan's first).
    An autoscaled group runs glmctl's policy (controlplane/autoscale/serve_policy.py); with
    no `redis_url` (a rendered config) the policy reads GLMCTL_REDIS_URL where the Serve
    controller runs. Serve's graceful shutdown covers the drain timeout plus the wait for
    a peer replica."""
    group = group or plan.group
    options: dict[str, Any] = {
        "name": deployment_name(group),
        "ray_actor_options": {"num_cpus": group.replica_actor.get("CPU", 0.1), "num_gpus": 0},
        "placement_group_bundles": [dict(b) for b in group.bundles],
        "placement_group_strategy": group.strategy,
        "max_ongoing_requests": group.max_ongoing_requests,
        "health_check_period_s": group.health.period_s,
        "health_check_timeout_s": group.health.timeout_s,
        "graceful_shutdown_timeout_s": shutdown_budget_s(group.graceful_shutdown_s),
        "max_constructor_retry_count": CONSTRUCTOR_RETRIES,
    }
    auto = group.autoscaling
    if num_replicas is not None or auto is None:
        options["num_replicas"] = (
            num_replicas if num_replicas is not None else group.replicas.initial
        )
    else:
        options["autoscaling_config"] = serve_autoscaling_config(
            auto.model_dump(),
            redis_url,
            router_namespace(plan.name),
            plan.name,
            engine_app_name(plan),
            role=group.pd,
        )
    return options


def router_options(plan: DeploymentPlan) -> dict[str, Any]:
    return {
        "name": ROUTER_DEPLOYMENT,
        "num_replicas": 1,
        "ray_actor_options": ROUTER_ACTOR,
        "health_check_period_s": 5.0,
        "max_constructor_retry_count": CONSTRUCTOR_RETRIES,
    }


def engine_app(
    plan: DeploymentPlan,
    redis_url: str,
    log_dir: str,
    num_replicas: int | None = None,
    app_name: str | None = None,
) -> Any:
    """`app_name`: the Serve application's name when not the versioned one (KubeRay keeps
    one name for every version; render/k8s/rayservice.py).

    A PD plan's app holds one deployment per pool: Serve wants one ingress per app, so the
    last group's deployment (decode) is bound with the others' as an unused argument."""
    from ray import serve

    from controlplane.backends.ray.serve_app import EngineGroup

    name = app_name or engine_app_name(plan)
    bound: list[Any] = []
    for group in plan.groups:
        options = engine_options(plan, num_replicas, redis_url, group)
        deployment = serve.deployment(EngineGroup).options(**options)  # type: ignore[attr-defined]
        if not group.pd:
            return deployment.bind(plan.to_data(), redis_url, name, log_dir)
        bound.append(deployment.bind(plan.to_data(), redis_url, name, log_dir, group.name, *bound))
    return bound[-1]


def router_app(plan: DeploymentPlan, redis_url: str, port: int, host: str = "") -> Any:
    """The router host app; `host` "" listens on the head's own address (see RouterHost)."""
    from ray import serve

    from controlplane.backends.ray.serve_app import RouterHost

    deployment = serve.deployment(RouterHost).options(**router_options(plan))  # type: ignore[attr-defined]
    router = {**plan.router.model_dump(), "models": [plan.group.served_model_name]}
    return deployment.bind(redis_url, router, plan.name, port, host)


def _redis_url(args: dict[str, Any]) -> str:
    from controlplane.errors import UserError
    from controlplane.settings import get_settings

    url = get_settings().redis_url_with_password(args.get("redis_url"))
    if not url:
        raise UserError("the rendered config needs a Redis URL.", fix="set GLMCTL_REDIS_URL.")
    return str(url)


def plan_from_args(args: dict[str, Any]) -> DeploymentPlan:
    """The plan of a rendered config's `args` (renders leave `origin` out: path-independent)."""
    return DeploymentPlan.model_validate({"origin": "rendered config", **args["plan"]})


def engine_builder(args: dict[str, Any]) -> Any:
    """`import_path` of a rendered config's engine application."""
    plan = plan_from_args(args)
    log_dir = str(args.get("log_dir", "/tmp/glmctl-logs"))
    return engine_app(plan, _redis_url(args), log_dir, app_name=args.get("app_name"))


def router_builder(args: dict[str, Any]) -> Any:
    """`import_path` of a rendered config's router application."""
    plan = plan_from_args(args)
    port = int(args.get("port", plan.router.port))
    return router_app(plan, _redis_url(args), port, str(args.get("host", plan.router.host or "")))
