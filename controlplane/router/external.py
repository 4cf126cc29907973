"""External OpenAI-compatible endpoints as the router sees them (topology `external:`).

An external endpoint is registered like an engine replica (id `external/<name>`, kind
`external`) so health, metrics and policies treat it alike, with three differences the
request path applies (`router/external_route.py`, which needs the `http` extra; this half
is configuration only and imports without it, for `render`):
- the OpenAI paths go under its `base_url` (`/chat/completions`, not `/v1/...`);
- the request's `model` (the topology's served_model_name) is rewritten to its own name;
- the request carries the endpoint's own key (`Authorization: Bearer`), never the
  client's: the client's key was checked by the router's auth before.

Keys: the config holds only a reference (`key_env` or `key_secret`); the value is read
when the router starts (`resolve_key`) and kept in memory, in the `ExternalRoute` only.
It is never written to Redis, a log line, an error or a command line.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controlplane.errors import UserError
from controlplane.local.secrets import read_secret, write_secret
from controlplane.router.registry import EndpointInfo

EXTERNAL = "external"  # EndpointInfo.kind of an external endpoint (engines: "engine")
POOL, OVERFLOW = "pool", "overflow"  # roles: shares traffic / only when local is saturated
ID_PREFIX = "external/"


@dataclass(frozen=True, slots=True)
class ExternalEndpoint:
    """One external endpoint of a router's config (a key reference, never the key)."""

    name: str
    base_url: str
    model: str  # what clients ask for (the topology's served_model_name)
    upstream_model: str  # what the endpoint calls it
    role: str = POOL
    capacity: int = 32
    health_path: str = "/models"
    key_env: str = ""
    key_secret: str = ""  # `name/key`

    @property
    def endpoint_id(self) -> str:
        return ID_PREFIX + self.name

    @property
    def key_ref(self) -> str:
        """The reference as people may see it: `env NAME`, `secret name/key` or `none`."""
        if self.key_env:
            return f"env {self.key_env}"
        return f"secret {self.key_secret}" if self.key_secret else "none"

    def info(self) -> EndpointInfo:
        return EndpointInfo(
            self.endpoint_id,
            self.base_url,
            self.model,
            group=EXTERNAL,
            flavor="openai",
            kind=EXTERNAL,
            role=self.role,
            capacity=self.capacity,
            upstream_model=self.upstream_model,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExternalEndpoint:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def externals_json(externals: tuple[ExternalEndpoint, ...]) -> str:
    return json.dumps([e.to_dict() for e in externals], sort_keys=True)


def externals_from_json(text: str) -> tuple[ExternalEndpoint, ...]:
    try:
        return tuple(ExternalEndpoint.from_dict(item) for item in json.loads(text or "[]"))
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"--external is not valid: {exc}", fix="pass a JSON list of endpoints."
        ) from exc


def secret_env_name(secret: str) -> str:
    """The variable a `name/key` secret arrives in (how k8s manifests inject it)."""
    return "GLMCTL_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", secret).upper()


def secret_file(secrets_dir: Path, secret: str) -> Path:
    name, _, key = secret.partition("/")
    return secrets_dir / name / key


def env_stash(secrets_dir: Path, name: str) -> Path:
    """Where `glmctl apply` hands the embedded cluster's router an `{env: NAME}` key: the
    cluster's processes were started earlier, from another shell's environment."""
    return secrets_dir / "env" / name


def stash_env_key(secrets_dir: Path, name: str, value: str) -> None:
    """Write an `{env: NAME}` key for the embedded cluster's router (mode 0600)."""
    write_secret(env_stash(secrets_dir, name), value)


def resolve_key(endpoint: ExternalEndpoint, secrets_dir: Path | None = None) -> str | None:
    """The endpoint's key from the router's environment or secrets folder; None for an
    endpoint without a key reference; UserError (naming the reference only) when unset."""
    from controlplane.settings import environment_value

    if endpoint.key_env:
        stash = env_stash(secrets_dir, endpoint.key_env) if secrets_dir else None
        value = read_secret(stash) if stash and stash.is_file() else None
        value = value or environment_value(endpoint.key_env)
        where = f"the variable {endpoint.key_env} is not set in the router's environment"
    elif endpoint.key_secret:
        value = environment_value(secret_env_name(endpoint.key_secret))
        path = secret_file(secrets_dir, endpoint.key_secret) if secrets_dir else None
        if value is None and path is not None and path.is_file():
            value = read_secret(path) or None
        where = (
            f"neither {secret_env_name(endpoint.key_secret)} nor the file"
            f" {path or '<state dir>/secrets/' + endpoint.key_secret} holds it"
        )
    else:
        return None
    if value is None:
        raise UserError(
            f"external endpoint `{endpoint.name}` has no API key: {where}.",
            fix=f"set it where the router runs ({endpoint.key_ref}), or change"
            f" `external[{endpoint.name}].api_key` in the topology.",
        )
    return value


def default_secrets_dir() -> Path:
    from controlplane.settings import get_settings

    return get_settings().state_dir / "secrets"


def sync_registry(redis_url: str, namespace: str, externals: tuple[ExternalEndpoint, ...]) -> None:
    """Register this config's external endpoints and drop external ones it no longer has
    (idempotent). Only what `EndpointInfo` holds goes to Redis: no key, no key reference."""
    from controlplane.router.registry import deregister_endpoint, list_endpoints, register_info

    wanted = {e.endpoint_id for e in externals}
    for info in list_endpoints(redis_url, namespace):
        if info.kind == EXTERNAL and info.endpoint_id not in wanted:
            deregister_endpoint(redis_url, info.endpoint_id, namespace)
    for endpoint in externals:
        register_info(redis_url, endpoint.info(), namespace)
