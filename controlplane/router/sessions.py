"""Session affinity from a session's very first request.

The routing lookup reads a session's binding before the policy decides; a session seen
for the first time has none, so two concurrent first requests (on one router or several)
could each pick an endpoint. `bind_first` settles it in Redis with bind-or-get (one
round trip, first requests only): the first binding wins and every other first request
follows it, so a conversation's KV cache builds up on one engine.
"""

from __future__ import annotations

from dataclasses import replace

from controlplane.router.policies import Decision, EndpointView
from controlplane.router.state import RedisState


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
