"""Session affinity from a session's very first request.

Two ways a new conversation's concurrent first requests used to split across endpoints:
- A request that found no binding: the routing lookup reads a session's binding before
  the policy decides, so two concurrent first requests (on one router or several) could
  each pick an endpoint. `bind_first` settles it in Redis with bind-or-get (one round
  trip, first requests only): the first binding wins and every other first request
  follows it.
- A request that found the binding, on an endpoint that looked overloaded: the session's
  own burst is load on its endpoint, so once about `balance_abs` of its requests were in
  flight the session policy sent the rest elsewhere (and rebound the session). Measured
  with 12 concurrent first requests per session, 3 simulated engines 20x slower (the
  load a busy CI machine puts on them): 2 of 20 sessions split, every split
  `session_overloaded`. `follow_settling` keeps every request of a binding younger than
  `session_settle_s` on its endpoint while that endpoint is a candidate (healthy, not
  draining, queue under `max_queue_per_endpoint`); later requests may still move off an
  overloaded endpoint, which rebinds the session (a new settle window begins).

So a conversation's KV cache builds up on one engine.
"""

from __future__ import annotations

from dataclasses import replace

from controlplane.router.policies import Decision, EndpointView
from controlplane.router.state import Lookup, RedisState


async def bind_first(
    state: RedisState, session_key: str, decision: Decision, views: list[EndpointView]
) -> Decision:
    """The decision for a session's first request: the policy's choice if it bound the
    session first, else the endpoint another request bound it to (when still a candidate)."""
    bound = await state.bind_session(session_key, decision.endpoint.endpoint_id)
    if bound == decision.endpoint.endpoint_id:
        return decision
    for view in views:
        if view.endpoint_id == bound:
            return replace(decision, endpoint=view, reason="session_bound")
    return decision


def follow_settling(
    decision: Decision, found: Lookup, views: list[EndpointView], settle_s: float
) -> Decision:
    """The session's bound endpoint instead of the policy's choice while the binding is
    younger than `settle_s` and the endpoint is among `views`; else `decision` unchanged.
    Pure. A binding of unknown age (Redis down, or written by an older router) is old."""
    bound, age = found.session_endpoint, found.session_age_s
    if bound is None or age is None or age >= settle_s:
        return decision
    if decision.endpoint.endpoint_id == bound:
        return decision
    for view in views:
        if view.endpoint_id == bound:
            return replace(decision, endpoint=view, reason="session_settling")
    return decision


async def session_decision(
    state: RedisState,
    session_key: str,
    decision: Decision,
    found: Lookup,
    views: list[EndpointView],
) -> Decision:
    """Where a request carrying `session_key` goes: bind-or-get for a session without a
    binding, else the policy's choice unless the binding is still settling."""
    if found.session_endpoint is None:
        return await bind_first(state, session_key, decision, views)
    return follow_settling(decision, found, views, state.config.session_settle_s)
