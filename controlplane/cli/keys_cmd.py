"""`glmctl keys create|list|revoke DEPLOYMENT`: the API keys of one deployment's router.

The secret is printed once, by `create`, and never stored: Redis holds its SHA-256 and a
record (name, expiry, limits, models). Routers pick changes up within one refresh
interval (0.1 s). Keys can be created before `glmctl apply`, which a router on a
non-loopback address needs (README, Security).

On Kubernetes the keys live in a Secret (key: key name, value: the secret):
`create --k8s` prints one, and `sync` (the router pods' init container) copies its keys'
hashes into Redis, revoking the ones it copied earlier that the Secret no longer holds.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
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
FROM_SECRET = "k8s-secret"  # `source` of the records `sync` manages
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")  # what a Secret's data key may be


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


def k8s_secret(secret_name: str, key_name: str, secret: str) -> str:
    """A Secret manifest holding one API key, for `kubectl apply -f -`."""
    import yaml

    if not SECRET_KEY.match(key_name):
        raise UserError(
            f"`{key_name}` cannot be a Secret key.",
            fix="use letters, digits, `-`, `_` and `.` in --name.",
        )
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name},
        "type": "Opaque",
        "stringData": {key_name: secret},
    }
    return yaml.safe_dump(manifest, sort_keys=False)


def read_key_dir(folder: Path) -> dict[str, str]:
    """Key name -> secret from a mounted Secret (its `..data` links and dot files skipped)."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder.", fix="mount the API keys Secret there.")
    return {
        path.name: path.read_text().strip()
        for path in sorted(folder.iterdir())
        if not path.name.startswith(".") and path.is_file() and path.read_text().strip()
    }


def sync_keys(redis_url: str, namespace: str, keys: dict[str, str]) -> tuple[int, int]:
    """Make the Secret-managed keys in Redis exactly `keys` (name -> secret); keys made by
    `glmctl keys create` stay. Returns (added, revoked)."""
    from controlplane.router.auth import hash_secret
    from controlplane.router.keys import redis_client

    table = f"{namespace}:apikeys"
    wanted = {hash_secret(secret): name for name, secret in keys.items()}
    with redis_client(redis_url) as client:
        records = {k.decode(): json.loads(v) for k, v in client.hgetall(table).items()}
        managed = {h for h, r in records.items() if r.get("source") == FROM_SECRET}
        stale = sorted(managed - set(wanted))
        new = {h: n for h, n in wanted.items() if h not in records}
        if stale:
            client.hdel(table, *stale)
        for key_hash, name in new.items():
            record = {"name": name, "created_at": time.time(), "source": FROM_SECRET}
            client.hset(table, key_hash, json.dumps(record))
    return len(new), len(stale)


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
        k8s: Annotated[
            bool,
            typer.Option(
                "--k8s", help="Print a Kubernetes Secret holding the key instead of using Redis."
            ),
        ] = False,
        secret: Annotated[
            str | None,
            typer.Option(help="--k8s: the Secret's name (default: DEPLOYMENT-api-keys)."),
        ] = None,
    ) -> None:
        """Create a key and print its secret (the only time it is shown)."""
        from controlplane.router.keys import SECRET_PREFIX, KeySpec, create_key

        if k8s:
            import secrets as random

            secret_name = secret or f"{deployment}-api-keys"
            value = SECRET_PREFIX + random.token_urlsafe(32)
            typer.echo(k8s_secret(secret_name, name, value), nl=False)
            typer.echo(
                f"key `{name}`: apply with `kubectl apply -f -`; to add it to an existing"
                f" Secret: kubectl patch secret {secret_name} --type merge -p"
                f' \'{{"stringData":{{"{name}":"<secret>"}}}}\', then'
                f" `kubectl rollout restart deployment/{deployment}-router`.",
                err=True,
            )
            return

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

    @keys.command("sync")
    def sync_cmd(
        deployment: DeploymentArg,
        from_dir: Annotated[
            Path, typer.Option("--from-dir", help="A mounted Secret: one file per key.")
        ],
        redis_url: RedisOption = None,
        namespace: NamespaceOption = None,
    ) -> None:
        """Copy the keys of a mounted Secret into Redis (the router pods' init container)."""
        keys = read_key_dir(from_dir)
        added, revoked = sync_keys(*_where(deployment, redis_url, namespace), keys)
        typer.echo(f"{len(keys)} key(s) from {from_dir}: {added} added, {revoked} revoked")

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
