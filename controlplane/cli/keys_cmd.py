"""`glmctl keys create|list|revoke DEPLOYMENT`: the API keys of one deployment's router.

The secret is printed once, by `create`, and never stored: Redis holds its SHA-256 and a
record (name, expiry, limits, models). Routers pick changes up within one refresh
interval (0.1 s). Keys can be created before `glmctl apply`, which a router on a
non-loopback address needs (README, Security).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from controlplane.cli.options import OutputFormat, OutputOption, emit
from controlplane.errors import UserError

DeploymentArg = Annotated[str, typer.Argument(help="Deployment name (the topology's `name`).")]
RedisOption = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        help="Redis of the deployment (default: GLMCTL_REDIS_URL, else the embedded cluster's).",
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(help="Key prefix in Redis (default: the deployment's, glmctl-DEPLOYMENT)."),
]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_expiry(text: str) -> float:
    """`30d`, `12h`, `90m`, `3600s` or `3600` -> seconds."""
    unit = text[-1:].lower()
    number = text[:-1] if unit in _UNITS else text
    try:
        seconds = float(number) * _UNITS.get(unit, 1)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise UserError(
            f"--expires `{text}` is not a duration.", fix="use a number with s, m, h or d: 30d."
        )
    return seconds


def _where(deployment: str, redis_url: str | None, namespace: str | None) -> tuple[str, str]:
    """(Redis URL with its password, namespace) of a deployment's router."""
    from controlplane.backends.ray import cluster
    from controlplane.settings import get_settings
    from controlplane.store.redis import router_namespace

    settings = get_settings()
    url = settings.redis_url_with_password(redis_url)
    if url is None:
        state = cluster.embedded_state(settings.state_dir)
        if state is None:
            raise UserError(
                "no Redis to keep keys in: no GLMCTL_REDIS_URL and no embedded cluster runs.",
                fix="run `glmctl apply TOPOLOGY` first, or pass --redis-url.",
            )
        url = state.redis_url
    return url, namespace or router_namespace(deployment)


def _describe(record: dict[str, Any]) -> str:
    limits = [f"{k}={record[k]}" for k in ("rpm", "tpm", "max_concurrent", "max_tokens")]
    limits = [item for item in limits if not item.endswith(("=0", "=None"))]
    expires = record.get("expires_at")
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(expires))) if expires else "never"
    models = ",".join(record.get("models") or []) or "all"
    return f"expires {when}  models {models}  {' '.join(limits) or 'no limits'}"


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    keys = typer.Typer(help="API keys of a deployment's router (secret shown once).")
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def create_cmd(
        deployment: DeploymentArg,
        name: Annotated[str, typer.Option(help="Who or what the key is for (unique).")],
        expires: Annotated[str | None, typer.Option(help="Lifetime: 30d, 12h, 90m.")] = None,
        rpm: Annotated[int, typer.Option(min=0, help="Requests per minute; 0: no limit.")] = 0,
        tpm: Annotated[
            int, typer.Option(min=0, help="Tokens per minute (prompt + max_tokens); 0: none.")
        ] = 0,
        model: Annotated[
            list[str] | None, typer.Option(help="A model the key may use (repeat); default all.")
        ] = None,
        max_concurrent: Annotated[
            int | None, typer.Option(min=1, help="Requests in flight at once.")
        ] = None,
        max_tokens: Annotated[int | None, typer.Option(min=1, help="max_tokens ceiling.")] = None,
        redis_url: RedisOption = None,
        namespace: NamespaceOption = None,
    ) -> None:
        """Create a key and print its secret (the only time it is shown)."""
        from controlplane.router.keys import KeySpec, create_key

        spec = KeySpec(
            name=name,
            expires_in_s=parse_expiry(expires) if expires else None,
            rpm=rpm,
            tpm=tpm,
            models=tuple(model or ()),
            max_concurrent=max_concurrent,
            max_tokens=max_tokens,
        )
        url, ns = _where(deployment, redis_url, namespace)
        secret = create_key(url, ns, spec)
        typer.echo(secret)
        typer.echo(
            f"key `{name}` created for {deployment}; the secret above is shown only now.",
            err=True,
        )

    @keys.command("list")
    def list_cmd(
        deployment: DeploymentArg,
        output: OutputOption = OutputFormat.TEXT,
        redis_url: RedisOption = None,
        namespace: NamespaceOption = None,
    ) -> None:
        """Keys of a deployment: name, id, expiry, models, limits (never the secret)."""
        from controlplane.router.keys import list_keys

        records = list_keys(*_where(deployment, redis_url, namespace))
        if output is not OutputFormat.TEXT:
            emit(records, output)
            return
        if not records:
            typer.echo(f"no keys for {deployment}")
        for record in records:
            typer.echo(f"{record['name']}  id {record['id']}  {_describe(record)}")

    @keys.command("revoke")
    def revoke_cmd(
        deployment: DeploymentArg,
        name: Annotated[str, typer.Argument(help="Key name (or id from `keys list`).")],
        redis_url: RedisOption = None,
        namespace: NamespaceOption = None,
    ) -> None:
        """Delete a key; routers refuse it within one refresh interval."""
        from controlplane.router.keys import revoke_key

        revoked = revoke_key(*_where(deployment, redis_url, namespace), name)
        typer.echo(f"revoked `{revoked}` of {deployment}")
