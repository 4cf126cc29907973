"""Session binding against a real Redis, hammered: four routers' state adapters decide
the concurrent first requests of many sessions (bind-or-get, lookup, write-back racing)
while every endpoint looks unevenly loaded, so the session policy keeps wanting to move."""

from __future__ import annotations

import asyncio
import random

import pytest

from controlplane.local.redis_server import LocalRedis
from controlplane.router.policies import EndpointView, RouteContext, session
from controlplane.router.sessions import session_decision
from controlplane.router.state import RedisState

pytestmark = pytest.mark.integration
ROUTERS, SESSIONS, FIRST_REQUESTS = 4, 40, 12


def random_views(draw: random.Random) -> list[EndpointView]:
    """Three endpoints with loads far enough apart that any of them can look overloaded."""
    return [
        EndpointView(name, f"http://127.0.0.1:{9000 + i}", "m", inflight=draw.randrange(0, 30))
        for i, name in enumerate("abc")
    ]


async def one_request(state: RedisState, key: str, draw: random.Random) -> str:
    """What the router's request path does for a session: lookup, policy, bind, record."""
    await asyncio.sleep(draw.random() * 0.02)  # arrivals spread like a client's fan-out
    found = await state.lookup([], key, "", 0, 0)
    views = random_views(draw)
    ctx = RouteContext(tuple(views), session_endpoint=found.session_endpoint)
    decision = await session_decision(state, key, session(ctx), found, views)
    state.record(decision.endpoint.endpoint_id, [], key)
    if draw.random() < 0.3:
        await state.flush()  # write-back racing the other requests' lookups
    return decision.endpoint.endpoint_id


async def test_concurrent_first_requests_of_many_sessions_bind_once(
    redis_server: LocalRedis,
) -> None:
    states = [RedisState(redis_server.url, f"r{i}") for i in range(ROUTERS)]
    draw = random.Random(16)
    try:
        split = []
        for number in range(SESSIONS):
            key = f"conversation-{number}"
            served = await asyncio.gather(
                *(one_request(states[i % ROUTERS], key, draw) for i in range(FIRST_REQUESTS))
            )
            if len(set(served)) > 1:
                split.append((key, served))
        assert split == []
        assert all(state.redis_ok for state in states)  # decided in Redis, not locally
    finally:
        for state in states:
            await state.close()
