"""Background work of one router worker: state refresh, write-back, health and load probes.

Each endpoint is probed by one router per period (a Redis `SET NX` claim), which writes
health and the parsed load snapshot to Redis for every router; with Redis down, every
router probes for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp

from controlplane.router.background import log, spawn
from controlplane.router.engine_metrics import long_poll as reads_by_long_poll
from controlplane.router.engine_metrics import parse_engine_metrics
from controlplane.router.external_route import ExternalRoute
from controlplane.router.registry import EndpointInfo
from controlplane.router.runtime import RouterRuntime

BACKOFF_CAP_S = 30.0  # longest wait between probes of an external endpoint that is down
# Probes in a row that time out before an engine leaves the rotation. A refused connection
# or a /health that is not 200 takes it out at once (the process is gone or says it is
# unwell); a late answer is an engine busy with its batch (a CPU-bound API server, a long
# prefill holding its event loop), which is load, not death: one late probe took the only
# replica out and every request got 503. Kubernetes' probes default to the same 3
# (failureThreshold); the request path still takes an endpoint out on its first failure.
SLOW_PROBES = 3


def start_background(app: RouterRuntime) -> list[asyncio.Task[None]]:
    """Start the refresh, probe and publish loops; the caller cancels them (cancel_all)."""
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


async def _refresh(app: RouterRuntime) -> None:
    assert app.state is not None
    if await app.state.refresh(app.inflight):
        app.reindex()
        await app.state.flush()


async def _publish(app: RouterRuntime) -> None:
    assert app.state is not None
    export = {**app.metrics.export(app.inflight), "router": app.router_id}
    await app.state.publish_metrics(export, ttl_s=app.config.metrics_publish_s * 4)


async def probe_all(app: RouterRuntime) -> None:
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


async def probe(app: RouterRuntime, endpoint: EndpointInfo) -> None:
    """GET /health then /metrics; healthy endpoints rejoin the rotation. A TensorRT-LLM
    endpoint's /metrics is read by `_long_poll` instead (at most one read at a time)."""
    assert app.session is not None and app.state is not None
    timeout = aiohttp.ClientTimeout(total=max(0.5, app.config.scrape_interval))
    external = app.externals.get(endpoint.endpoint_id)
    if external is not None:
        await probe_external(app, external, timeout)
        return
    long_poll = reads_by_long_poll(endpoint.flavor)
    endpoint_id = endpoint.endpoint_id
    try:
        async with app.session.get(endpoint.url + "/health", timeout=timeout) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"/health answered {response.status}")
        text = "" if long_poll else await _metrics_text(app, endpoint.url, timeout)
    except TimeoutError:
        # Counted in the shared record: the routers take turns probing an endpoint.
        late = app.state.view.late.get(endpoint_id, 0) + 1
        ok = late < SLOW_PROBES and app.state.view.healthy.get(endpoint_id, True)
        error = f"{late} probe(s) in a row got no answer within {timeout.total:g} s"
        await app.state.set_health(endpoint_id, ok, error, late=late)  # keeps its last load
        return
    except Exception as exc:
        await app.state.set_health(endpoint_id, False, f"{type(exc).__name__}: {exc}")
        return
    app.local_down.pop(endpoint_id, None)
    await app.state.set_health(endpoint_id, True)
    if not long_poll:
        await app.state.set_load(endpoint_id, parse_engine_metrics(text, endpoint.flavor))
        return
    key = (id(app), endpoint_id)
    if key not in _polling:
        _polling.add(key)
        spawn(_long_poll(app, endpoint, key))


async def _metrics_text(app: RouterRuntime, url: str, timeout: aiohttp.ClientTimeout) -> str:
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


async def _long_poll(app: RouterRuntime, endpoint: EndpointInfo, key: tuple[int, str]) -> None:
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


async def probe_external(app: RouterRuntime, route: ExternalRoute, timeout: Any) -> None:
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
