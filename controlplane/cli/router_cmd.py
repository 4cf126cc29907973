"""`glmctl router ...`: run the router, manage its endpoints and API keys."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from controlplane.errors import UserError


class PolicyName(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOAD = "least_load"
    POWER_OF_TWO = "power_of_two"
    PREFIX_AFFINITY = "prefix_affinity"
    SESSION = "session"


class AuthName(StrEnum):
    AUTO = "auto"
    API_KEYS = "api_keys"
    NONE = "none"


RedisOption = Annotated[
    str | None,
    typer.Option("--redis-url", help="Router state (default: GLMCTL_REDIS_URL)."),
]
NamespaceOption = Annotated[str, typer.Option(help="Key prefix of this deployment in Redis.")]


def _redis_url(given: str | None) -> str:
    from controlplane.doctor.extras import require
    from controlplane.local.secrets import redact_url
    from controlplane.settings import REDIS_SCHEMES, get_settings

    require("redis")

    url = get_settings().redis_url_with_password(given)
    if not url:
        raise UserError("no Redis URL given.", fix="pass --redis-url or set GLMCTL_REDIS_URL.")
    if not url.startswith(REDIS_SCHEMES):
        raise UserError(f"`{redact_url(url)}` is not a Redis URL.",
                        fix=f"give one starting with {' or '.join(REDIS_SCHEMES)},"
                        " for example redis://127.0.0.1:6379/0.")  # fmt: skip
    return url


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    router = typer.Typer(help="OpenAI-compatible router with shared state in Redis.")
    app.add_typer(router, name="router")

    @router.command("serve")
    def serve_cmd(
        redis_url: RedisOption = None,
        port: Annotated[int, typer.Option(help="Port every worker listens on.")] = 8000,
        host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
        workers: Annotated[int, typer.Option(help="Worker processes (one per core).")] = 1,
        policy: Annotated[PolicyName, typer.Option(help="Default routing policy.")] = (
            PolicyName.PREFIX_AFFINITY
        ),
        max_queue: Annotated[int, typer.Option(help="In-flight per endpoint before 429.")] = 256,
        session_header: Annotated[str, typer.Option(help="Header naming a session.")] = (
            "x-session-id"
        ),
        namespace: NamespaceOption = "glmctl",
        auth: Annotated[
            AuthName, typer.Option(help="auto: keys required off loopback (docs: Security guide).")
        ] = AuthName.AUTO,
    ) -> None:
        """Serve until Ctrl-C. Without a Redis URL, a private redis-server is started."""
        from dataclasses import replace

        from controlplane.doctor.extras import require
        from controlplane.local.secrets import redact_url

        require("uvicorn", "orjson", "aiohttp", "redis")
        from controlplane.router.config import RouterConfig
        from controlplane.router.server import supervise
        from controlplane.router.state import StateConfig
        from controlplane.settings import get_settings

        local = None
        url = _redis_url(redis_url) if redis_url else get_settings().redis_url_with_password()
        if not url:
            from controlplane.local.redis_server import LocalRedis

            password_file = get_settings().state_dir / "router" / "redis.password"
            local = LocalRedis.start(password_file=password_file)
            url = local.url
        config = RouterConfig(
            redis_url=url, policy=policy.value, host=host, port=port, workers=workers,
            max_queue_per_endpoint=max_queue, session_header=session_header,
            state=replace(StateConfig(), namespace=namespace), auth=auth.value,
        )  # fmt: skip
        typer.echo(
            f"router on http://{host}:{port} ({workers} workers, {policy.value}), {redact_url(url)}"
        )
        try:
            supervise(config)
        finally:
            if local is not None:
                local.stop()

    @router.command("register")
    def register_cmd(
        endpoint_id: Annotated[str, typer.Argument(help="Unique endpoint name.")],
        url: Annotated[str, typer.Argument(help="Engine base URL, e.g. http://127.0.0.1:8100.")],
        model: Annotated[str, typer.Option(help="Served model name.")],
        flavor: Annotated[str, typer.Option(help="Metric names: vllm, sglang or trtllm.")] = "vllm",
        group: Annotated[str, typer.Option(help="Engine group.")] = "",
        redis_url: RedisOption = None,
        namespace: NamespaceOption = "glmctl",
    ) -> None:
        """Add (or replace) an engine endpoint."""
        from controlplane.router.registry import register_endpoint

        register_endpoint(_redis_url(redis_url), endpoint_id, url, model, group, flavor, namespace)
        typer.echo(f"registered {endpoint_id} -> {url} ({model})")

    @router.command("deregister")
    def deregister_cmd(
        endpoint_id: Annotated[str, typer.Argument(help="Endpoint name.")],
        redis_url: RedisOption = None,
        namespace: NamespaceOption = "glmctl",
    ) -> None:
        """Remove an engine endpoint (no-op if absent)."""
        from controlplane.router.registry import deregister_endpoint

        deregister_endpoint(_redis_url(redis_url), endpoint_id, namespace)

    @router.command("endpoints")
    def endpoints_cmd(redis_url: RedisOption = None, namespace: NamespaceOption = "glmctl") -> None:
        """List registered endpoints."""
        from controlplane.router.registry import list_endpoints

        for info in list_endpoints(_redis_url(redis_url), namespace):
            typer.echo(f"{info.endpoint_id}\t{info.url}\t{info.model}\t{info.flavor}\t{info.group}")

    @router.command("add-key")
    def add_key_cmd(
        name: Annotated[str, typer.Argument(help="Who the key belongs to.")],
        rate: Annotated[float, typer.Option(help="Requests per second; 0 = unlimited.")] = 0.0,
        burst: Annotated[int, typer.Option(help="Bucket size (default: the rate).")] = 0,
        key: Annotated[
            str | None, typer.Option(help="The key itself (default: a new random one).")
        ] = None,
        redis_url: RedisOption = None,
        namespace: NamespaceOption = "glmctl",
    ) -> None:
        """Allow an API key (stored hashed; once any key exists, every request needs one)."""
        import secrets

        from controlplane.router.registry import add_api_key

        secret = key or f"sk-glmctl-{secrets.token_urlsafe(24)}"
        add_api_key(_redis_url(redis_url), secret, name, rate, burst, namespace)
        typer.echo(secret)
