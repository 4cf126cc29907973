"""A settling session binding holds its concurrent first requests on one endpoint."""

from __future__ import annotations

from controlplane.router.policies import Decision, EndpointView, RouteContext, session
from controlplane.router.sessions import follow_settling
from controlplane.router.state import Lookup

SETTLE_S = 5.0


def views(*loads: int) -> list[EndpointView]:
    return [
        EndpointView(f"e{i}", f"http://127.0.0.1:{9000 + i}", "m", inflight=load)
        for i, load in enumerate(loads)
    ]


def overloaded_choice(candidates: list[EndpointView]) -> Decision:
    """What the session policy decides for a session bound to e0, now overloaded."""
    decision = session(RouteContext(tuple(candidates), session_endpoint="e0"))
    assert decision.reason == "session_overloaded" and decision.endpoint.endpoint_id == "e1"
    return decision


def test_a_young_binding_keeps_its_burst_on_the_bound_endpoint() -> None:
    candidates = views(12, 0)  # the session's own 12 first requests are on e0
    decision = overloaded_choice(candidates)
    found = Lookup(session_endpoint="e0", session_age_s=0.2)
    kept = follow_settling(decision, found, candidates, SETTLE_S)
    assert (kept.endpoint.endpoint_id, kept.reason) == ("e0", "session_settling")


def test_a_settled_binding_may_move_off_an_overloaded_endpoint() -> None:
    candidates = views(12, 0)
    decision = overloaded_choice(candidates)
    for found in (
        Lookup(session_endpoint="e0", session_age_s=SETTLE_S),
        Lookup(session_endpoint="e0", session_age_s=None),  # Redis down or an older router
    ):
        assert follow_settling(decision, found, candidates, SETTLE_S) == decision


def test_a_young_binding_whose_endpoint_left_the_candidates_is_not_followed() -> None:
    candidates = views(0, 0)[1:]  # e0 unhealthy, draining or its queue full
    decision = Decision(candidates[0], "session_new")
    found = Lookup(session_endpoint="e0", session_age_s=0.1)
    assert follow_settling(decision, found, candidates, SETTLE_S) == decision


def test_no_binding_or_the_same_endpoint_leaves_the_decision_alone() -> None:
    candidates = views(0, 0)
    decision = Decision(candidates[1], "session_hit")
    same = Lookup(session_endpoint="e1", session_age_s=0.1)
    assert follow_settling(decision, same, candidates, SETTLE_S) is decision
    assert follow_settling(decision, Lookup(), candidates, SETTLE_S) is decision
