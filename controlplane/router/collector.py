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
    """GET /health then /metrics; healthy endpoints rejoin the rotation. A TensorRT-LLM
    endpoint's /metrics is read by `_long_poll` instead (at most one read at a time)."""
    assert app.session is not None and app.state is not None
    timeout = aiohttp.ClientTimeout(total=max(0.5, app.config.scrape_interval))
    long_poll = endpoint.flavor == FLAVOR_TRTLLM
    try:
        async with app.session.get(endpoint.url + "/health", timeout=timeout) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"/health answered {response.status}")
        text = "" if long_poll else await _metrics_text(app, endpoint.url, timeout)
    except Exception as exc:
        await app.state.set_health(endpoint.endpoint_id, False, f"{type(exc).__name__}: {exc}")
        return
    app.local_down.pop(endpoint.endpoint_id, None)
    await app.state.set_health(endpoint.endpoint_id, True)
    if not long_poll:
        await app.state.set_load(endpoint.endpoint_id, parse_engine_metrics(text, endpoint.flavor))
        return
    key = (id(app), endpoint.endpoint_id)
    if key not in _polling:
        _polling.add(key)
        spawn(_long_poll(app, endpoint, key))


async def _metrics_text(app: RouterApp, url: str, timeout: aiohttp.ClientTimeout) -> str:
    """The /metrics body; '' on a non-200 answer."""
    assert app.session is not None
    async with app.session.get(url + "/metrics", timeout=timeout) as response:
        return await response.text() if response.status == 200 else ""


# trtllm-serve's /metrics is a long poll: it answers once 2 s pass without a new iteration
# (router/engine_metrics.py), so under steady traffic it may not answer for a long time.
# One read per endpoint at a time, off the probe loop (health keeps its period, and
# abandoned reads do not pile up in the server); a read that fails or outlives the cap
# leaves the last load in place, and the routers' own in-flight counts still bound it.
TRTLLM_POLL_CAP_S = 60.0
_polling: set[tuple[int, str]] = set()


async def _long_poll(app: RouterApp, endpoint: EndpointInfo, key: tuple[int, str]) -> None:
    try:
        with contextlib.suppress(Exception):  # the next probe starts another read
            timeout = aiohttp.ClientTimeout(total=TRTLLM_POLL_CAP_S)
            text = await _metrics_text(app, endpoint.url, timeout)
            state = app.state
            # An endpoint deregistered while the read was open keeps no load record.
            if state is not None and endpoint.endpoint_id in state.view.endpoints:
                load = parse_engine_metrics(text, endpoint.flavor)
                await state.set_load(endpoint.endpoint_id, load)
    finally:
        _polling.discard(key)
