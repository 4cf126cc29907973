"""Admission of one parsed request: its key (401 / 403), its cost (400) and its key's
rate and concurrency limits (429), before any endpoint is chosen.

Order: authenticate, then price the request (pure, router/limits.py), then spend the key's
budget in Redis (one EVALSHA, only for keys with rpm / tpm / concurrency limits). A request
that leaves out `max_tokens` under a `max_tokens` limit gets the limit written into the
forwarded body, so it cannot cost more than its price.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from controlplane.router.auth import ApiKey, Authenticator, check_model
from controlplane.router.background import spawn
from controlplane.router.config import RouterConfig
from controlplane.router.limits import KeyAdmission, request_cost
from controlplane.router.state import RedisState

_LIMIT_NAMES = {
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
    "concurrency": "requests in flight",
}


class RateLimited(Exception):
    """A spent limit: 429 with Retry-After."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class Admitted:
    """What the rest of the request path needs from admission."""

    body: bytes
    key: ApiKey | None = None
    slot: str = ""  # request id holding a concurrency slot, released at the end

    @property
    def key_hash(self) -> str:
        return self.key.key_hash if self.key is not None else ""

    @property
    def legacy_rate(self) -> tuple[float, int]:
        """Requests per second and burst of an older `router add-key` key (state.lookup)."""
        key = self.key
        if key is None or not key.rate_per_s:
            return 0.0, 0
        return key.rate_per_s, key.burst or max(1, int(key.rate_per_s))


class Admission:
    def __init__(self, config: RouterConfig, state: RedisState) -> None:
        self.config = config
        self.state = state
        self.auth = Authenticator(config.auth, config.host)
        lease = config.limits.client_total_timeout
        self.keys = KeyAdmission(state.client, config.state.namespace, lease)

    def authenticate(self, authorization: str | None) -> ApiKey | None:
        """RequestProblem 401 unless the request carries a valid key (or needs none)."""
        return self.auth.authenticate(authorization, self.state.view.api_keys)

    async def admit(self, key: ApiKey | None, payload: dict[str, Any], body: bytes) -> Admitted:
        """Raises RequestProblem (403, 400) or RateLimited (429)."""
        check_model(key, payload["model"])
        cost, inject = request_cost(payload, self.config.limits, key.limits if key else None)
        if inject is not None:
            payload["max_tokens"] = inject
            body = orjson.dumps(payload)
        admitted = Admitted(body, key)
        if key is None or not key.limited or not self.state.available():
            return admitted
        request_id = uuid.uuid4().hex if key.limits.max_concurrent else ""
        allowed, retry_s, which = await self.keys.admit(key.key_hash, key.limits, cost, request_id)
        if not allowed:
            raise RateLimited(f"rate limit exceeded: {_LIMIT_NAMES.get(which, which)}", retry_s)
        admitted.slot = request_id
        return admitted

    def release(self, admitted: Admitted) -> None:
        if admitted.slot:
            spawn(self.keys.release(admitted.key_hash, admitted.slot))
