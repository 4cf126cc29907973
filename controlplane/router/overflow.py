"""Who may take a request: local replicas first, overflow endpoints when they cannot (pure).

`router.overflow` names external endpoints that get traffic only when every local replica
(and every pool external) is saturated, or none is healthy (failover). The routing policy
then chooses among the endpoints `select` leaves, so overflow composes with every policy.

Steps, over the healthy endpoints not yet tried for this request:
1. primary endpoints (role pool: engines and pool externals) below their saturation point
   (an engine: `saturated_at` in-flight requests, default the topology's max_num_seqs; an
   external: its `capacity`);
2. else overflow endpoints below their capacity (reason `saturated`, or `failover` when no
   primary endpoint is healthy at all);
3. else primary endpoints below the queue limit (`max_queue_per_endpoint`): the request
   waits in an engine's queue rather than being refused;
4. else nothing: the caller answers 429 (all full) or 503 (none healthy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controlplane.router.policies import EndpointView

OVERFLOW = "overflow"
SATURATED, FAILOVER = "saturated", "failover"


@dataclass(frozen=True, slots=True)
class Selection:
    endpoints: tuple[EndpointView, ...]
    overflow: str = ""  # "", SATURATED or FAILOVER: why overflow endpoints were offered


def select(endpoints: Sequence[EndpointView], max_queue: int, saturated_at: int = 0) -> Selection:
    """The endpoints a policy may choose from (steps in the module docstring).

    `saturated_at` 0: engines count as saturated only at `max_queue` (no overflow set)."""
    primary = [e for e in endpoints if e.role != OVERFLOW]
    spill = tuple(e for e in endpoints if e.role == OVERFLOW and e.load < (e.capacity or max_queue))
    soft = saturated_at or max_queue
    below = tuple(e for e in primary if e.load < (e.capacity or soft))
    if below:
        return Selection(below)
    if spill:
        return Selection(spill, SATURATED if primary else FAILOVER)
    return Selection(tuple(e for e in primary if e.load < (e.capacity or max_queue)))
