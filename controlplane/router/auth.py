"""API-key authentication and the secure default (pure, but for the start-up check).

Keys live in Redis as `ns:apikeys` (hash: sha256(secret) -> JSON record, see
router/keys.py); routers read them with their periodic refresh, so a revoked key stops
working within one refresh interval. Modes (`router.auth` in the topology):
- `api_keys`: every request needs `Authorization: Bearer <key>`.
- `none`: nobody needs a key (`glmctl plan` warns).
- `auto` (default): on a loopback address, keys are required once any exists; on any
  other address the router requires keys, and refuses to start while none exists
  (`refuse_open_bind`), so that a router reachable from other machines is never open
  by accident.
Status codes follow OpenAI's API: 401 missing / unknown / expired / revoked key, 403 a
model the key may not use.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

from controlplane.errors import UserError
from controlplane.router.limits import KeyLimits
from controlplane.router.validation import RequestProblem

AUTO, API_KEYS, NONE = "auto", "api_keys", "none"
MODES = (AUTO, API_KEYS, NONE)


def hash_secret(secret: str) -> str:
    """How a key is stored and looked up: hex SHA-256 (keys are random, so no salt needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key's record as routers see it (never the secret)."""

    key_hash: str
    name: str
    expires_at: float | None = None
    models: tuple[str, ...] = ()  # empty: every model
    limits: KeyLimits = field(default_factory=KeyLimits)
    rate_per_s: float = 0.0  # older `glmctl router add-key` records: requests per second
    burst: int = 0

    @classmethod
    def from_record(cls, key_hash: str, record: dict[str, Any]) -> ApiKey:
        expires = record.get("expires_at")
        return cls(
            key_hash=key_hash,
            name=str(record.get("name", "")),
            expires_at=float(expires) if expires else None,
            models=tuple(str(m) for m in record.get("models") or ()),
            limits=KeyLimits(
                rpm=int(record.get("rpm") or 0),
                tpm=int(record.get("tpm") or 0),
                max_concurrent=record.get("max_concurrent") or None,
                max_tokens=record.get("max_tokens") or None,
                max_prompt_tokens=record.get("max_prompt_tokens") or None,
            ),
            rate_per_s=float(record.get("rate") or 0.0),
            burst=int(record.get("burst") or 0),
        )

    @property
    def limited(self) -> bool:
        """Whether admission needs Redis (rpm, tpm or concurrency)."""
        own = self.limits
        return bool(own.rpm or own.tpm or own.max_concurrent)


@functools.lru_cache(maxsize=64)  # asked per request (keys_required): parse once
def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; a name or 0.0.0.0 counts as exposed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def keys_required(mode: str, host: str, keys_exist: bool) -> bool:
    if mode == NONE:
        return False
    if mode == API_KEYS:
        return True
    return keys_exist or not is_loopback(host)


class Authenticator:
    """Checks a request's key against the router's current copy of the key records."""

    def __init__(self, mode: str, host: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown auth mode {mode!r}; known: {', '.join(MODES)}")
        self.mode = mode
        self.host = host
        self._source: dict[str, Any] | None = None
        self._parsed: dict[str, ApiKey] = {}

    def authenticate(
        self, authorization: str | None, records: dict[str, Any], now: float = 0.0
    ) -> ApiKey | None:
        """The request's key, None when no key is needed; RequestProblem 401."""
        if not keys_required(self.mode, self.host, bool(records)):
            return None
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise RequestProblem(
                401, "missing API key: send `Authorization: Bearer <key>`", "authentication_error"
            )
        key = self._key(hash_secret(token), records)
        if key is None or (key.expires_at is not None and key.expires_at <= (now or time.time())):
            raise RequestProblem(401, "invalid, expired or revoked API key", "authentication_error")
        return key

    def _key(self, key_hash: str, records: dict[str, Any]) -> ApiKey | None:
        if records is not self._source:  # a refresh replaced the records: parse anew
            self._source, self._parsed = records, {}
        found = self._parsed.get(key_hash)
        if found is None:
            record = records.get(key_hash)
            if record is None:
                return None
            found = self._parsed[key_hash] = ApiKey.from_record(key_hash, record)
        return found


def check_model(key: ApiKey | None, model: str) -> None:
    """RequestProblem 403 when the key may not use `model`."""
    if key is not None and key.models and model not in key.models:
        raise RequestProblem(403, f"this API key may not use model `{model}`", "permission_error")


def refuse_open_bind(mode: str, host: str, key_count: int | None) -> None:
    """Raise UserError when a router on a non-loopback address would serve without keys.

    `key_count` None: Redis could not be read (then only an explicit mode passes)."""
    if mode != AUTO or is_loopback(host) or key_count:
        return
    raise UserError(
        f"the router would listen on {host}, which other machines may reach, and no API"
        " key exists for this deployment, so anyone could use its GPUs.",
        fix="create a key first (`glmctl keys create DEPLOYMENT --name NAME`), or set"
        " `router.auth: api_keys` (requests get 401 until a key exists), or, to serve"
        " openly on purpose, `router.auth: none` (--auth none).",
    )
