"""External OpenAI-compatible endpoints of a topology and the router's overflow to them.

A topology may list `external:` endpoints (a hosted GLM API, an XInference server for
GLM-Edge, ...) that the router treats like its own replicas: health checks, metrics,
policies. Those named in `router.overflow.to` get traffic only when every local replica is
saturated or none is healthy; the others share traffic with the local replicas.

An endpoint's API key is only ever a reference (`{env: NAME}` or `{secret: name/key}`):
plans, rendered files and logs carry the reference, never the value, which the router
resolves when it starts (controlplane/router/external.py).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from controlplane.spec.fields import NAME_PATTERN, PositiveInt, StrictModel

ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A Kubernetes Secret name (DNS-1123 subdomain) and one of its keys, as `name/key`.
SECRET_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/[-._a-zA-Z0-9]+$"
NO_KEY = "none"  # `api_key: none`: the server takes no key (a local XInference, say)


class ApiKeyRef(StrictModel):
    """Where the router finds an external endpoint's API key: one of `env` or `secret`."""

    env: str | None = Field(
        None,
        pattern=ENV_PATTERN,
        description="Environment variable of the router's process that holds the key.",
        examples=["ZHIPU_API_KEY"],
    )
    secret: str | None = Field(
        None,
        pattern=SECRET_PATTERN,
        description="Secret `name/key`: a Kubernetes Secret on k8s; elsewhere the file"
        " `<state dir>/secrets/<name>/<key>` (mode 0600) or the variable"
        " GLMCTL_SECRET_<NAME>_<KEY>.",
        examples=["zhipu/api-key"],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ApiKeyRef:
        if (self.env is None) == (self.secret is None):
            raise PydanticCustomError("api_key_ref", "give exactly one of `env` and `secret`")
        return self

    def describe(self) -> str:
        """What to show people: the reference, never a value."""
        return f"env {self.env}" if self.env else f"secret {self.secret}"


class ExternalEndpointSpec(StrictModel):
    """An OpenAI-compatible server the router sends requests to beside its own replicas."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Name of the endpoint (router endpoint id `external/<name>`).",
        examples=["zhipu"],
    )
    base_url: str = Field(
        description="Base URL the OpenAI paths go under (the router appends"
        " /chat/completions, /completions, /models).",
        examples=["https://open.bigmodel.cn/api/paas/v4"],
    )
    model: str = Field(
        min_length=1,
        description="Model name the endpoint serves; the router rewrites the request's"
        " `model` (the topology's served_model_name) to it.",
        examples=["glm-4.5"],
    )
    api_key: ApiKeyRef | Literal["none"] = Field(
        description="Reference to the endpoint's API key, {env: NAME} or {secret: name/key};"
        " `none` for a server that takes no key. Never the key itself.",
        examples=[{"env": "ZHIPU_API_KEY"}],
    )
    capacity: PositiveInt = Field(
        32, description="Most requests in flight to this endpoint at once (its share of load)."
    )
    health_path: str = Field(
        "/models",
        pattern=r"^/[^\s?#]*$",
        description="GET path under base_url that answers 200 while the endpoint serves.",
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _key_reference(cls, value: Any) -> Any:
        if isinstance(value, str) and value != NO_KEY:  # never echoed: it may be the key
            raise PydanticCustomError("api_key_literal", "a key written into the spec")
        return value

    @property
    def key_ref(self) -> ApiKeyRef | None:
        """The key's reference; None for `api_key: none`."""
        return self.api_key if isinstance(self.api_key, ApiKeyRef) else None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        problem = url_problem(value)
        if problem:
            raise PydanticCustomError("external_url", problem)
        return value.rstrip("/")


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an external base URL, or None (pure)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        return f"it is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if parts.username or parts.password:
        return "it carries credentials, which would show in plans and logs"
    if parts.query or parts.fragment:
        return "it has a query or fragment; give only scheme, host, port and path"
    return None


class OverflowSpec(StrictModel):
    """Which external endpoints take the requests local replicas cannot (`router.overflow`)."""

    to: list[str] = Field(
        min_length=1,
        description="Names of `external` endpoints that get traffic only when every local"
        " replica is saturated or none is healthy.",
        examples=[["zhipu"]],
    )
    saturated_at: PositiveInt | None = Field(
        None,
        description="Requests in flight per local replica at which it counts as saturated;"
        " default: max_num_seqs (more would wait in the engine's queue).",
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: Any) -> Any:
        # `overflow: [zhipu]` is shorthand for `overflow: {to: [zhipu]}`.
        if isinstance(value, list | str):
            return {"to": [value] if isinstance(value, str) else value}
        return value
