"""API keys of one deployment in Redis: create (secret shown once), list, revoke.

Only `sha256(secret)` is stored (`ns:apikeys` hash, see router/scripts.py); the record
beside it holds the key's name, creation and expiry times, allowed models and limits.
Names are unique per deployment. Synchronous (the CLI's), one short connection per call.
"""

from __future__ import annotations

import json
import secrets
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from controlplane.errors import UserError
from controlplane.router.auth import hash_secret
from controlplane.store.redis import RedisAuthError, connection

SECRET_PREFIX = "sk-glmctl-"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What `glmctl keys create` asks for (0 / None / empty: no limit)."""

    name: str
    expires_in_s: float | None = None
    rpm: int = 0
    tpm: int = 0
    models: tuple[str, ...] = ()
    max_concurrent: int | None = None
    max_tokens: int | None = None


__all__ = ["KeySpec", "RedisAuthError", "count_keys", "create_key", "list_keys", "revoke_key"]


def redis_client(redis_url: str) -> AbstractContextManager[Any]:
    """A short-lived client (store/redis.py): failures become a UserError that never shows
    the password."""
    return connection(redis_url)


def _records(client: Any, namespace: str) -> dict[str, dict[str, Any]]:
    raw: dict[bytes, bytes] = client.hgetall(f"{namespace}:apikeys")
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def create_key(redis_url: str, namespace: str, spec: KeySpec, now: float | None = None) -> str:
    """Store a new key's hash and record; returns the secret (shown once, never stored)."""
    now = now or time.time()
    record: dict[str, Any] = {
        "name": spec.name,
        "created_at": now,
        "expires_at": now + spec.expires_in_s if spec.expires_in_s else None,
        "models": list(spec.models),
        "rpm": spec.rpm,
        "tpm": spec.tpm,
        "max_concurrent": spec.max_concurrent,
        "max_tokens": spec.max_tokens,
    }
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with redis_client(redis_url) as client:
        if any(r.get("name") == spec.name for r in _records(client, namespace).values()):
            raise UserError(
                f"a key named `{spec.name}` already exists.",
                fix="pick another --name, or revoke the old key first.",
            )
        client.hset(f"{namespace}:apikeys", hash_secret(secret), json.dumps(record))
    return secret


def list_keys(redis_url: str, namespace: str) -> list[dict[str, Any]]:
    """Every key's record plus `id` (the first 12 hex digits of its hash), sorted by name."""
    with redis_client(redis_url) as client:
        records = _records(client, namespace)
    listed = [{"id": key_hash[:12], **record} for key_hash, record in records.items()]
    return sorted(listed, key=lambda r: (str(r.get("name", "")), r["id"]))


def count_keys(redis_url: str, namespace: str) -> int:
    with redis_client(redis_url) as client:
        return int(client.hlen(f"{namespace}:apikeys"))


def revoke_key(redis_url: str, namespace: str, name_or_id: str) -> str:
    """Delete the key with this name (or id); returns its name. Routers refuse it within
    one refresh interval."""
    with redis_client(redis_url) as client:
        records = _records(client, namespace)
        matches = [
            h for h, r in records.items() if r.get("name") == name_or_id or h[:12] == name_or_id
        ]
        if not matches:
            known = ", ".join(sorted(str(r.get("name")) for r in records.values())) or "none"
            raise UserError(
                f"no key named `{name_or_id}`; keys: {known}.",
                fix="run `glmctl keys list DEPLOYMENT` for names and ids.",
            )
        client.hdel(f"{namespace}:apikeys", *matches)
    return str(records[matches[0]].get("name", name_or_id))
