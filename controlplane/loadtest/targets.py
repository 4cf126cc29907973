"""What a load test runs against: a URL, a running deployment, or a topology file.

A topology file is applied on the target cluster (the embedded default), tested, and
deleted afterwards; a deployment of the same name that already ran is used as it is and
left running. Ray and Redis are imported only for deployment and topology targets.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.errors import UserError
from controlplane.loadtest.scrape import fetch
from controlplane.spec.models import SloSpec

ApplyProgress = Callable[[str, int, int], None]
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Target:
    """A resolved target; call `cleanup()` when the test is over (idempotent)."""

    url: str
    model: str
    slo: SloSpec
    time_scale: float = 1.0
    context_length: int = 32768
    engine_urls: list[str] = field(default_factory=list)
    name: str | None = None
    applied: bool = False  # this load test applied it, and deletes it
    address: str | None = None

    def cleanup(self) -> None:
        if self.applied and self.name is not None:
            from controlplane.backends.ray.manage import delete

            delete(self.name, self.address)
            self.applied = False


def resolve(text: str, address: str | None = None, progress: ApplyProgress | None = None) -> Target:
    """The target named by `text` (see the module docstring)."""
    if text.startswith(("http://", "https://")):
        return _url_target(text)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return _topology_target(path, address, progress)
    return _deployment_target(text, address)


def _url_target(url: str) -> Target:
    try:
        models = json.loads(fetch(f"{url.rstrip('/')}/v1/models", timeout=10))["data"]
        first: dict[str, Any] = models[0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise UserError(
            f"{url} does not answer GET /v1/models like an OpenAI server ({exc}).",
            fix="check the URL (the router's or an engine's base URL, without /v1).",
        ) from None
    context = int(first.get("max_model_len") or 32768)
    return Target(url.rstrip("/"), str(first["id"]), SloSpec(), context_length=context)


def _deployment_target(name: str, address: str | None) -> Target:
    from controlplane.backends.ray import cluster
    from controlplane.backends.ray.deploy import resolve_target
    from controlplane.backends.ray.records import list_records, read_record

    target = resolve_target(address, None)
    record = None
    if target is not None:
        cluster.connect(target)
        record = read_record(target.redis_url, name)
    if record is None or target is None:
        running = [r.name for r in list_records(target.redis_url)] if target else []
        raise UserError(
            f"`{name}` is not a URL, a topology file or a running deployment"
            f" (running: {', '.join(running) or 'none'}).",
            fix="pass http://HOST:PORT, a topology YAML, or a name from `glmctl status`.",
        )
    return _from_record(record, target.redis_url, address)


def _from_record(record: Any, redis_url: str, address: str | None) -> Target:
    from controlplane.backends.ray.records import replica_records

    plan = record.deployment_plan
    spec = plan.spec
    simulated = plan.group.simulated
    replicas = replica_records(redis_url, record.name, record.app)
    return Target(
        url=record.router_url,
        model=plan.group.served_model_name,
        slo=SloSpec.model_validate(spec.get("slo") or {}),
        time_scale=float(spec.get("simulation", {}).get("time_scale", 1.0)) if simulated else 1.0,
        context_length=int(spec.get("context_length") or 32768),
        engine_urls=[str(r["url"]) for r in replicas if r.get("url")],
        name=record.name,
        address=address,
    )


def _topology_target(path: Path, address: str | None, progress: ApplyProgress | None) -> Target:
    from controlplane.backends.ray.deploy import execute_apply, prepare_apply, quiet_progress
    from controlplane.spec import load_topology

    topology = load_topology(path)
    prepared = prepare_apply(topology, address)
    already = prepared.running is not None
    try:
        record = execute_apply(prepared, topology, progress or quiet_progress)
    except BaseException:
        if not already:
            from controlplane.backends.ray.manage import stop_if_idle

            stop_if_idle(prepared.target)
        raise
    target = _from_record(record, prepared.target.redis_url, address)
    target.applied = not already
    try:
        wait_serving(target)
    except BaseException:
        target.cleanup()
        raise
    return target


def wait_serving(target: Target, timeout_s: float = 90.0) -> None:
    """Until one chat request through the router succeeds (endpoints register shortly
    after the replicas are healthy)."""
    body = json.dumps({"model": target.model, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "ready?"}]}).encode()  # fmt: skip
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"{target.url}/v1/chat/completions", data=body,
            headers={"content-type": "application/json"},
        )  # fmt: skip
        try:
            with _OPENER.open(request, timeout=30) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise UserError(
        f"{target.url} did not answer a chat request in {timeout_s:.0f} s ({last}).",
        fix="check `glmctl status` and the logs under the state dir.",
    )
