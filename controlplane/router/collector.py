"""Background work of one router worker: state refresh, write-back, health and load probes.

Each endpoint is probed by one router per period (a Redis `SET NX` claim), which writes
health and the parsed load snapshot to Redis for every router; with Redis down, every
router probes for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp

from controlplane.router.engine_metrics import FLAVOR_TRTLLM, parse_engine_metrics
from controlplane.router.registry import EndpointInfo

if TYPE_CHECKING:
    from controlplane.router.app import RouterApp

_background: set[asyncio.Task[Any]] = set()


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
    endpoints = list(app.state.view.endpoints.values())
    claims = await asyncio.gather(
        *(app.state.claim_scrape(e.endpoint_id, app.config.scrape_interval) for e in endpoints)
    )
    await asyncio.gather(
        *(probe(app, e) for e, mine in zip(endpoints, claims, strict=True) if mine)
    )


async def probe(app: RouterApp, endpoint: EndpointInfo) -> None:
    """GET /health then /metrics; healthy endpoints rejoin the rotation.

    trtllm-serve's `/metrics` is a long poll (engine_metrics.py: it returns once 2 s pass
    without a new iteration), so for that flavour only /health decides health and a read
    that does not finish in time leaves the last load in place."""
    assert app.session is not None and app.state is not None
    timeout = aiohttp.ClientTimeout(total=max(0.5, app.config.scrape_interval))
    long_poll = endpoint.flavor == FLAVOR_TRTLLM
    text: str | None = None
    try:
        async with app.session.get(endpoint.url + "/health", timeout=timeout) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"/health answered {response.status}")
        text = await _metrics_text(app, endpoint, timeout, tolerate=long_poll)
    except Exception as exc:
        await app.state.set_health(endpoint.endpoint_id, False, f"{type(exc).__name__}: {exc}")
        return
    app.local_down.pop(endpoint.endpoint_id, None)
    await app.state.set_health(endpoint.endpoint_id, True)
    if text is not None:
        await app.state.set_load(endpoint.endpoint_id, parse_engine_metrics(text, endpoint.flavor))


async def _metrics_text(
    app: RouterApp, endpoint: EndpointInfo, timeout: aiohttp.ClientTimeout, tolerate: bool
) -> str | None:
    """The /metrics body ('' on a non-200 answer); None when `tolerate` and the read
    failed or timed out (the caller keeps the last load)."""
    assert app.session is not None
    try:
        async with app.session.get(endpoint.url + "/metrics", timeout=timeout) as response:
            return await response.text() if response.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        if tolerate:
            return None
        raise
