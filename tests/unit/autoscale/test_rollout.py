"""A rolling update has a serving gap only when one old replica must leave before a new
one fits."""

from __future__ import annotations

import pytest

from controlplane.autoscale.drain import PEER_WAIT_S
from controlplane.autoscale.rollout import UpdateGap, update_gap

DRAIN_S, STARTUP_S = 300.0, 900.0


@pytest.mark.parametrize(
    ("old", "room", "grow"),
    [
        (1, 1, False),  # a new replica fits beside the old one: surge
        (1, 0, True),  # the embedded cluster grows a node for it
        (2, 0, False),  # one old replica drains while the other serves
        (0, 0, False),  # nothing serves anyway
    ],
)
def test_no_gap_when_some_replica_always_serves(old: int, room: int, grow: bool) -> None:
    assert update_gap(old, room, grow, DRAIN_S, STARTUP_S) is None


def test_one_replica_without_room_has_a_gap_of_drain_plus_startup() -> None:
    gap = update_gap(1, 0, False, DRAIN_S, STARTUP_S)
    assert gap == UpdateGap(DRAIN_S, STARTUP_S)
    assert gap.longest_s == DRAIN_S + STARTUP_S
    message = gap.message("glm45-fp8")
    assert f"after {PEER_WAIT_S:.0f} s the old replica drains (up to 300 s" in message
    assert "up to 900 s" in message and "a gap of up to 1200 s" in message
    assert "--allow-downtime" in gap.fix()
