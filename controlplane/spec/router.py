"""The `router:` section of a topology: policy, auth, per-request limits, overflow."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from controlplane.spec.external import OverflowSpec
from controlplane.spec.fields import Duration, Port, PositiveInt, StrictModel, drop_if


class RouterPolicy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOAD = "least_load"
    POWER_OF_TWO = "power_of_two"
    PREFIX_AFFINITY = "prefix_affinity"
    SESSION = "session"
    PRECISE_PREFIX = "precise_prefix"  # from the engines' KV events (router/kv_index.py)


class RouterAuth(StrEnum):
    AUTO = "auto"  # loopback: keys once any exist; any other address: keys, or refuse to start
    API_KEYS = "api_keys"  # every request needs a key (`glmctl keys create`)
    NONE = "none"  # open to anyone who reaches the port; `glmctl plan` warns


class RouterLimitsSpec(StrictModel):
    """What one request may cost the deployment (a key's own limits may be lower)."""

    max_body_bytes: PositiveInt = Field(4 * 1024 * 1024, description="Request body size.")
    max_prompt_tokens: PositiveInt | None = Field(
        None, description="Estimated prompt tokens per request (bytes / 4); default: no limit."
    )
    max_tokens: PositiveInt | None = Field(
        None, description="`max_tokens` a request may ask for; set when a request leaves it out."
    )
    max_concurrent_per_key: PositiveInt | None = Field(
        None, description="Requests in flight per API key; default: no limit."
    )
    max_headers: PositiveInt = Field(100, description="Request headers per request.")
    max_header_bytes: PositiveInt = Field(16 * 1024, description="Request line plus headers.")
    client_idle_timeout: Duration = Field(
        30.0, description="Longest wait for the next bytes of a request's head or body."
    )
    client_total_timeout: Duration = Field(
        900.0, description="Longest a request may take end to end, stream included."
    )
    max_response_bytes: PositiveInt = Field(
        256 * 1024 * 1024, description="Engine answer size before the router cuts it off."
    )


class PrecisePrefixSpec(StrictModel):
    """Weights of `policy: precise_prefix` (score = prefix x cached fraction of the prompt
    - queue x load above the least loaded / 8 - kv x KV usage; highest wins) and the
    engine's block hashing."""

    prefix: float = Field(1.0, ge=0, description="Weight of the cached fraction of the prompt.")
    queue: float = Field(
        1.0, ge=0, description="Weight of the load above the least loaded, per 8 requests."
    )
    kv: float = Field(
        0.0, ge=0, description="Weight of the engine's KV-cache usage (0: load alone)."
    )
    block_size: PositiveInt = Field(
        16,
        description="Engine KV block size in tokens (vLLM `--block-size`, SGLang"
        " `--page-size`; vLLM's CPU build: 32).",
    )


class RouterSpec(StrictModel):
    """The OpenAI-compatible router in front of the replicas."""

    auth: RouterAuth = Field(
        RouterAuth.AUTO,
        description="api_keys, none, or auto (keys required off loopback; see the Security guide).",
    )
    limits: RouterLimitsSpec = Field(
        default_factory=RouterLimitsSpec, description="Per-request cost limits."
    )

    policy: RouterPolicy = Field(RouterPolicy.PREFIX_AFFINITY, description="Routing policy.")
    replicas: PositiveInt = Field(2, description="Router processes behind one address.")
    port: Port = Field(8000, description="Port the router listens on.")
    host: str | None = Field(
        None,
        description="Address the router listens on. Unset: 127.0.0.1 on the embedded local"
        " cluster; on a cluster given by --address, the address of the node it runs on (the"
        " head), which clients on the cluster's network reach. `0.0.0.0`: every interface.",
        min_length=1,
        pattern=r"^[0-9A-Za-z.:\-]+$",
    )
    max_queue_per_endpoint: PositiveInt = Field(
        256, description="In-flight requests per engine before answering 429."
    )
    session_header: str = Field("x-session-id", description="Header naming a session.")
    precise_prefix: PrecisePrefixSpec | None = Field(
        None, description="Weights of policy precise_prefix (default prefix 1, queue 1, kv 0)."
    )
    overflow: OverflowSpec | None = Field(
        None,
        description="External endpoints that take requests when every local replica is"
        " saturated or down, e.g. {to: [zhipu]}.",
        examples=[{"to": ["zhipu"]}],
    )

    @model_serializer(mode="wrap")
    def _without_unset_overflow(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Specs without overflow serialise (and so plan, digest and render) as before it.
        return drop_if(drop_if(handler(self), "overflow", None), "precise_prefix", None)
