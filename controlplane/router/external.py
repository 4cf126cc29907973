"""External OpenAI-compatible endpoints as the router sees them (topology `external:`).

An external endpoint is registered like an engine replica (id `external/<name>`, kind
`external`) so health, metrics and policies treat it alike, with three differences the
request path applies (`ExternalRoute`):
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controlplane.errors import UserError
from controlplane.local.secrets import read_secret, write_secret
from controlplane.router.registry import EndpointInfo

if TYPE_CHECKING:  # the request path's types; the config half imports without the extras
    from controlplane.router.proxy import Receive, Send, UpstreamFailed
    from controlplane.router.upstream import UpstreamPool

EXTERNAL = "external"  # EndpointInfo.kind of an external endpoint (engines: "engine")
POOL, OVERFLOW = "pool", "overflow"  # roles: shares traffic / only when local is saturated
ID_PREFIX = "external/"
_PATHS = {"chat": "/chat/completions", "completions": "/completions"}
_REJECTED_KEY = (401, 403)
RETRY_STATUSES = (*_REJECTED_KEY, 429)  # not the client's fault: try another endpoint


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


@dataclass(frozen=True, slots=True)
class ExternalRoute:
    """How the request path reaches one external endpoint (holds its key, in memory)."""

    endpoint: ExternalEndpoint
    key: str | None = field(default=None, repr=False)  # never in a repr or a log line

    @property
    def header(self) -> bytes:
        """Extra request header lines (CRLF-terminated) for the upstream request."""
        if not self.key:
            return b""
        return b"authorization: Bearer " + self.key.encode("latin-1") + b"\r\n"

    def health_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}

    def url(self, route: str) -> str:
        return self.endpoint.base_url + _PATHS[route]

    @property
    def health_url(self) -> str:
        return self.endpoint.base_url + self.endpoint.health_path

    def body(self, body: bytes) -> bytes:
        """The request with `model` renamed to the endpoint's own model name."""
        import orjson  # the `http` extra: `render` imports this module without it

        payload = orjson.loads(body)
        payload["model"] = self.endpoint.upstream_model
        return orjson.dumps(payload)

    async def forward(
        self,
        pool: UpstreamPool,
        route: str,
        body: bytes,
        send: Send,
        tag: list[tuple[bytes, bytes]],
        receive: Receive,
    ) -> tuple[int, float, bool]:
        """`proxy.forward` to this endpoint: its URL, its model name, its key; a refused key
        or its own rate limit is a failure to retry elsewhere, not the client's answer."""
        from controlplane.router.proxy import forward

        url, upstream_body = self.url(route), self.body(body)
        return await forward(
            pool, url, upstream_body, send, tag, receive, self.header, RETRY_STATUSES
        )

    def explain(self, failure: UpstreamFailed) -> tuple[str, str]:
        """(for the operator: health record, log; for the client: the error message)."""
        if not failure.status:
            return str(failure), f"external endpoint `{self.endpoint.name}` did not answer"
        return self.failure(failure.status, True), self.failure(failure.status)

    def failure(self, status: int, for_operator: bool = False) -> str:
        """Why an answer with `status` (one of RETRY_STATUSES) is not passed to the client;
        `for_operator` (health records, status) also names where the key comes from."""
        name = self.endpoint.name
        if status not in _REJECTED_KEY:
            return f"external endpoint `{name}` is rate limiting (HTTP {status})"
        text = f"external endpoint `{name}` rejected the API key glmctl sent (HTTP {status})"
        if for_operator:
            text += f"; check the key its api_key names ({self.endpoint.key_ref})"
        return text


def default_secrets_dir() -> Path:
    from controlplane.settings import get_settings

    return get_settings().state_dir / "secrets"


def routes(
    externals: tuple[ExternalEndpoint, ...], secrets_dir: str = ""
) -> dict[str, ExternalRoute]:
    """Endpoint id -> route, every key resolved (UserError on the first missing one)."""
    folder = Path(secrets_dir) if secrets_dir else default_secrets_dir()
    return {e.endpoint_id: ExternalRoute(e, resolve_key(e, folder)) for e in externals}


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
