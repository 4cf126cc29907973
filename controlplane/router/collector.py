"""Background work of one router worker: state refresh, write-back, health and load probes.

Each endpoint is probed by one router per period (a Redis `SET NX` claim), which writes
health and the parsed load snapshot to Redis for every router; with Redis down, every
router probes for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp

from controlplane.router.engine_metrics import parse_engine_metrics
from controlplane.router.external import ExternalRoute
from controlplane.router.registry import EndpointInfo

if TYPE_CHECKING:
    from controlplane.router.app import RouterApp

_background: set[asyncio.Task[Any]] = set()
log = logging.getLogger("controlplane.router")
BACKOFF_CAP_S = 30.0  # longest wait between probes of an external endpoint that is down


def spawn(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Fire and forget, keeping a reference so the task is not collected mid-way."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


def start_background(app: RouterApp) -> list[asyncio.Task[None]]:
    loop = asyncio.get_running_loop()
    return [
        loop.create_task(_every(app.config.state.refresh_interval, lambda: _refresh(app))),
        loop.create_task(_every(app.config.scrape_interval, lambda: probe_all(app))),
        loop.create_task(_every(app.config.metrics_publish_s, lambda: _publish(app))),
    ]


async def _every(period: float, step: Any) -> None:
    # Some clients turn a cancellation into their own exception: loop on the task's own
    # cancellation state too, or a cancelled loop would run forever.
    task = asyncio.current_task()
    while task is None or not task.cancelling():
        began = time.monotonic()
        with contextlib.suppress(Exception):
            await step()
        await asyncio.sleep(max(0.0, period - (time.monotonic() - began)))


async def _refresh(app: RouterApp) -> None:
    assert app.state is not None
    if await app.state.refresh(app.inflight):
        app.reindex()
        await app.state.flush()


async def _publish(app: RouterApp) -> None:
    assert app.state is not None
    export = {**app.metrics.export(app.inflight), "router": app.router_id}
    await app.state.publish_metrics(export, ttl_s=app.config.metrics_publish_s * 4)


async def probe_all(app: RouterApp) -> None:
    """Probe every endpoint this router claimed for this period, concurrently."""
    assert app.state is not None
    now = time.monotonic()
    endpoints = [
        e for e in app.endpoints().values() if app.probe_after.get(e.endpoint_id, 0) <= now
    ]
    claims = await asyncio.gather(
        *(app.state.claim_scrape(e.endpoint_id, app.config.scrape_interval) for e in endpoints)
    )
    await asyncio.gather(
        *(probe(app, e) for e, mine in zip(endpoints, claims, strict=True) if mine)
    )


async def probe(app: RouterApp, endpoint: EndpointInfo) -> None:
    """GET /health then /metrics; healthy endpoints rejoin the rotation."""
    assert app.session is not None and app.state is not None
    timeout = aiohttp.ClientTimeout(total=max(0.5, app.config.scrape_interval))
    external = app.externals.get(endpoint.endpoint_id)
    if external is not None:
        await probe_external(app, external, timeout)
        return
    try:
        async with app.session.get(endpoint.url + "/health", timeout=timeout) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"/health answered {response.status}")
        async with app.session.get(endpoint.url + "/metrics", timeout=timeout) as response:
            text = await response.text() if response.status == 200 else ""
    except Exception as exc:
        await app.state.set_health(endpoint.endpoint_id, False, f"{type(exc).__name__}: {exc}")
        return
    app.local_down.pop(endpoint.endpoint_id, None)
    await app.state.set_health(endpoint.endpoint_id, True)
    await app.state.set_load(endpoint.endpoint_id, parse_engine_metrics(text, endpoint.flavor))


async def probe_external(app: RouterApp, route: ExternalRoute, timeout: Any) -> None:
    """GET its health path with its own key (hosted APIs have no /health nor /metrics: its
    load is what the routers send it). A failing endpoint is probed less and less often
    (`backoff_s`), so a hosted API that is down is not hammered."""
    assert app.session is not None and app.state is not None
    endpoint_id = route.endpoint.endpoint_id
    try:
        async with app.session.get(
            route.health_url, headers=route.health_headers(), timeout=timeout
        ) as response:
            await response.read()
            status = response.status
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    else:
        if status == 200:
            app.probe_failures.pop(endpoint_id, None)
            app.probe_after.pop(endpoint_id, None)
            app.local_down.pop(endpoint_id, None)
            await app.state.set_health(endpoint_id, True)
            return
        error = route.failure(status, True) if status in (401, 403, 429) else f"HTTP {status}"
    failures = app.probe_failures[endpoint_id] = app.probe_failures.get(endpoint_id, 0) + 1
    if failures == 1:  # once per outage: the reason, never the key
        log.warning("external endpoint %s is out of rotation: %s", endpoint_id, error)
    app.probe_after[endpoint_id] = time.monotonic() + backoff_s(
        failures, app.config.scrape_interval
    )
    await app.state.set_health(endpoint_id, False, error)


def backoff_s(failures: int, period_s: float, cap_s: float = BACKOFF_CAP_S) -> float:
    """Wait before the next probe after `failures` failed ones in a row: doubling from one
    probe period, at most `cap_s` (pure)."""
    return min(cap_s, period_s * 2 ** max(0, failures - 1))
