"""What runs, recorded in Redis: one record per deployment, one per live replica.

`glmctl:deployment:<name>` holds the applied plan, its Serve app, the router's address and
the replica count; `glmctl:replicas:<name>` maps each healthy replica to where its ranks
run (written by the replica itself, removed when it stops).
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel

from controlplane.planner.models import DeploymentPlan
from controlplane.store.redis import (
    DEPLOYMENT_KEY,
    FAILURES_KEY,
    REPLICAS_KEY,
    ROUTER_KEY,
    STOPPED_KEY,
    sync_client,
)
from controlplane.store.redis import DEPLOYMENTS_KEY as DEPLOYMENTS


class DeploymentRecord(BaseModel):
    name: str
    app: str
    version: str
    plan: dict[str, Any]
    router_app: str
    router_url: str
    router_port: int
    replicas: int
    applied_at: float

    @property
    def deployment_plan(self) -> DeploymentPlan:
        return DeploymentPlan.model_validate(self.plan)


def _client(url: str) -> Any:
    return sync_client(url, decode_responses=True)


def read_record(redis_url: str, name: str) -> DeploymentRecord | None:
    client = _client(redis_url)
    try:
        raw = client.get(DEPLOYMENT_KEY.format(name=name))
    finally:
        client.close()
    return DeploymentRecord.model_validate_json(raw) if raw else None


def write_record(redis_url: str, record: DeploymentRecord) -> None:
    client = _client(redis_url)
    try:
        pipe = client.pipeline()
        pipe.set(DEPLOYMENT_KEY.format(name=record.name), record.model_dump_json())
        pipe.sadd(DEPLOYMENTS, record.name)
        pipe.execute()
    finally:
        client.close()


def delete_record(redis_url: str, name: str) -> None:
    client = _client(redis_url)
    try:
        pipe = client.pipeline()
        pipe.delete(
            DEPLOYMENT_KEY.format(name=name),
            REPLICAS_KEY.format(name=name),
            ROUTER_KEY.format(name=name),
            FAILURES_KEY.format(name=name),
            STOPPED_KEY.format(name=name),
        )
        pipe.srem(DEPLOYMENTS, name)
        pipe.execute()
    finally:
        client.close()


def deployment_names(redis_url: str) -> list[str]:
    """Names of the recorded deployments (no Ray needed: shell completion uses it)."""
    client = _client(redis_url)
    try:
        return sorted(str(n) for n in client.smembers(DEPLOYMENTS))
    finally:
        client.close()


def list_records(redis_url: str) -> list[DeploymentRecord]:
    client = _client(redis_url)
    try:
        names = sorted(client.smembers(DEPLOYMENTS))
    finally:
        client.close()
    records = [read_record(redis_url, n) for n in names]
    return [r for r in records if r is not None]


def replica_records(redis_url: str, name: str, app: str | None = None) -> list[dict[str, Any]]:
    """Live replicas of a deployment (optionally of one Serve app / version)."""
    client = _client(redis_url)
    try:
        raw = client.hgetall(REPLICAS_KEY.format(name=name))
    finally:
        client.close()
    out = [json.loads(v) for v in raw.values()]
    return sorted(
        (r for r in out if app is None or r.get("app") == app), key=lambda r: r["started_at"]
    )


def router_url(redis_url: str, name: str) -> str | None:
    """The URL the deployment's router published (RouterHost), None before it started."""
    client = _client(redis_url)
    try:
        url = client.get(ROUTER_KEY.format(name=name))
    finally:
        client.close()
    return str(url) if url else None


def new_record(
    plan: DeploymentPlan,
    app: str,
    router_app: str,
    router_port: int,
    replicas: int,
    url: str | None = None,
) -> DeploymentRecord:
    """`url`: where clients reach the router (default: loopback, the embedded cluster)."""
    return DeploymentRecord(
        name=plan.name,
        app=app,
        version=plan.digest(),
        plan=plan.to_data(),
        router_app=router_app,
        router_url=url or f"http://127.0.0.1:{router_port}",
        router_port=router_port,
        replicas=replicas,
        applied_at=time.time(),
    )


def restarts_stopped(redis_url: str, name: str) -> dict[str, Any] | None:
    """The report latched when the deployment's replicas failed too often, or None."""
    client = _client(redis_url)
    try:
        raw = client.get(STOPPED_KEY.format(name=name))
    finally:
        client.close()
    return dict(json.loads(raw)) if raw else None


def clear_failures(redis_url: str, name: str) -> None:
    """Forget the deployment's replica failures and a latched report (`glmctl apply`)."""
    client = _client(redis_url)
    try:
        client.delete(FAILURES_KEY.format(name=name), STOPPED_KEY.format(name=name))
    finally:
        client.close()
