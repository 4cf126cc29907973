"""Whether a rolling update leaves a model without any serving replica (pure).

A changed topology replaces replicas one at a time when the cluster cannot hold a surge
replica (backends/ray/serve_steps.py `roll`): a new replica starts whenever one fits, else an
old one drains first. Old replicas serve until new ones are healthy, so with two or more
old replicas no request finds the model without a replica. With exactly one old replica
and no room for a new one, the old one must leave first: after waiting PEER_WAIT_S for a
peer that cannot come, it drains, and nothing serves until the new replica is healthy.
Keeping the old one serving until the new one runs would need the GPUs it holds, which is
the surge the cluster cannot give. So `glmctl apply` says so before anything changes and
goes ahead only with `--allow-downtime`.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.autoscale.drain import PEER_WAIT_S


@dataclass(frozen=True, slots=True)
class UpdateGap:
    """How long the model may have no serving replica during an update, and why."""

    drain_s: float  # the old replica's drain timeout: its in-flight requests finish
    startup_s: float  # the new replica's start-up limit (engine loads, becomes healthy)

    @property
    def longest_s(self) -> float:
        return self.drain_s + self.startup_s

    def message(self, name: str) -> str:
        return (
            f"{name} runs one replica and the cluster has no room for a second, so this update"
            f" replaces it in place: after {PEER_WAIT_S:.0f} s the old replica drains (up to"
            f" {self.drain_s:.0f} s for its in-flight requests) and no replica serves until the"
            f" new one is healthy (its start-up, up to {self.startup_s:.0f} s): a gap of up to"
            f" {self.longest_s:.0f} s in which new requests get 503."
        )

    @staticmethod
    def fix() -> str:
        return (
            "pass --allow-downtime to accept the gap, or make room for one more replica"
            " (free or add GPUs of that type, or unpin `cluster.nodes`) so the update can"
            " surge, or run `replicas: 2` before changing the spec."
        )


def update_gap(
    old_serving: int, room_for_new: int, can_grow: bool, drain_s: float, startup_s: float
) -> UpdateGap | None:
    """The gap of replacing a running version, None when some replica always serves:
    a new replica fits now (`room_for_new`), the cluster grows for one (`can_grow`, an
    embedded cluster whose size is not pinned), or more than one old replica serves
    (one drains while the others serve). None too when no old replica serves anyway."""
    if room_for_new > 0 or can_grow or old_serving != 1:
        return None
    return UpdateGap(drain_s, startup_s)
