"""Synchronous endpoint and API-key registry (for the planner, Ray actors and the CLI).

No event loop needed: each call opens a short-lived Redis connection. All calls are
idempotent: registering again replaces the entry, deregistering a missing id is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from controlplane.store.redis import DEFAULT_NAMESPACE, connection


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One engine endpoint: where it listens, what it serves, which metric names it speaks."""

    endpoint_id: str
    url: str  # base URL, e.g. http://127.0.0.1:9001 (the router appends /v1/...)
    model: str  # served model name, matched against the request's `model`
    group: str = ""  # engine group of the plan
    flavor: str = "vllm"  # vllm | sglang | trtllm: what /metrics holds (engine_metrics.py)
    kind: str = "engine"  # engine | external (router/external.py)
    role: str = "pool"  # pool: shares traffic | overflow: only when local is saturated
    capacity: int = 0  # most requests in flight; 0: the router's max_queue_per_endpoint
    upstream_model: str = ""  # the model name the endpoint itself serves, if not `model`
    # Prefill/decode disaggregation: "" (colocated), "prefill" or "decode" (spec/pd_pools.py).
    pd: str = ""
    # SGLang's bootstrap port of a prefill endpoint (the decode side pulls KV from it),
    # or vLLM's NIXL side-channel port; 0: none.
    bootstrap_port: int = 0
    # KV events (router/kv_subscriber.py KvFeed): the engine's ZMQ PUB and replay
    # endpoints as connect URLs, one per (DP) rank; the engine id changes on restart.
    kv_events: tuple[str, ...] = ()
    kv_replay: tuple[str, ...] = ()
    engine_id: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("endpoint_id")
        for name, default in _OPTIONAL.items():  # entries without PD or KV events read as before
            if data[name] == default:
                del data[name]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, endpoint_id: str, text: str | bytes) -> EndpointInfo:
        data: dict[str, Any] = json.loads(text)
        return cls(
            endpoint_id=endpoint_id,
            url=str(data["url"]).rstrip("/"),
            model=str(data["model"]),
            group=str(data.get("group", "")),
            flavor=str(data.get("flavor", "vllm")),
            kind=str(data.get("kind", "engine")),
            role=str(data.get("role", "pool")),
            capacity=int(data.get("capacity", 0)),
            upstream_model=str(data.get("upstream_model", "")),
            pd=str(data.get("pd", "")),
            bootstrap_port=int(data.get("bootstrap_port", 0)),
            kv_events=tuple(str(url) for url in data.get("kv_events", ())),
            kv_replay=tuple(str(url) for url in data.get("kv_replay", ())),
            engine_id=str(data.get("engine_id", "")),
        )


# Fields left out of the stored JSON at their default (and read back as it).
_OPTIONAL: dict[str, Any] = {
    "pd": "",
    "bootstrap_port": 0,
    "kv_events": (),
    "kv_replay": (),
    "engine_id": "",
}


def hash_api_key(key: str) -> str:
    """How API keys are stored: hex SHA-256, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()


def _client(redis_url: str) -> Any:
    """A short-lived client (store/redis.py): failures become a UserError without the
    password."""
    return connection(redis_url)


def register_endpoint(
    redis_url: str,
    endpoint_id: str,
    url: str,
    model: str,
    group: str = "",
    flavor: str = "vllm",
    namespace: str = DEFAULT_NAMESPACE,
) -> EndpointInfo:
    """Add or replace an endpoint; routers pick it up within their refresh interval."""
    info = EndpointInfo(endpoint_id, url.rstrip("/"), model, group, flavor)
    return register_info(redis_url, info, namespace)


def register_info(
    redis_url: str, info: EndpointInfo, namespace: str = DEFAULT_NAMESPACE
) -> EndpointInfo:
    """`register_endpoint` for a ready-made entry (external endpoints carry more fields)."""
    endpoint_id = info.endpoint_id
    with _client(redis_url) as client:
        pipe = client.pipeline()
        pipe.hset(f"{namespace}:endpoints", endpoint_id, info.to_json())
        pipe.hdel(f"{namespace}:health", endpoint_id)
        pipe.set(f"{namespace}:epoch", str(time.time()), nx=True)
        pipe.execute()
    return info


def deregister_endpoint(
    redis_url: str, endpoint_id: str, namespace: str = DEFAULT_NAMESPACE
) -> None:
    """Remove an endpoint (idempotent); routers stop sending to it at their next refresh."""
    with _client(redis_url) as client:
        pipe = client.pipeline()
        for suffix in ("endpoints", "health", "load", "draining"):
            pipe.hdel(f"{namespace}:{suffix}", endpoint_id)
        pipe.execute()


def list_endpoints(redis_url: str, namespace: str = DEFAULT_NAMESPACE) -> list[EndpointInfo]:
    """Registered endpoints, sorted by id."""
    with _client(redis_url) as client:
        raw: dict[bytes, bytes] = client.hgetall(f"{namespace}:endpoints")
    return sorted(
        (EndpointInfo.from_json(key.decode(), value) for key, value in raw.items()),
        key=lambda info: info.endpoint_id,
    )


def external_health(redis_url: str, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
    """External endpoints with their last probe: id, url, role, ok, error (no key: none is
    stored). For `glmctl status`."""
    with _client(redis_url) as client:
        pipe = client.pipeline()
        pipe.hgetall(f"{namespace}:endpoints")
        pipe.hgetall(f"{namespace}:health")
        endpoints, health = pipe.execute()
    out = []
    for raw_id, raw in sorted(endpoints.items()):
        info = EndpointInfo.from_json(raw_id.decode(), raw)
        if info.kind != "external":
            continue
        record = json.loads(health.get(raw_id, b"{}"))
        out.append(
            {
                "endpoint": info.endpoint_id,
                "url": info.url,
                "role": info.role,
                "ok": bool(record.get("ok", True)),
                "error": str(record.get("error", "")),
            }
        )
    return out


def add_api_key(
    redis_url: str,
    key: str,
    name: str,
    rate_per_s: float = 0.0,
    burst: int = 0,
    namespace: str = DEFAULT_NAMESPACE,
) -> None:
    """Allow `key` (stored hashed). `rate_per_s` 0 means no rate limit. Once any key
    exists, routers require `Authorization: Bearer <key>`."""
    record = {"name": name, "rate": rate_per_s, "burst": burst or max(1, int(rate_per_s))}
    with _client(redis_url) as client:
        client.hset(f"{namespace}:apikeys", hash_api_key(key), json.dumps(record))


def remove_api_key(redis_url: str, key: str, namespace: str = DEFAULT_NAMESPACE) -> None:
    with _client(redis_url) as client:
        client.hdel(f"{namespace}:apikeys", hash_api_key(key))
