"""What surrounds a routing policy's choice: the one Redis lookup before it (prefix match,
session binding, rate limit) and the record after it (decision metrics, what the prefix
index and session table learn). Thin adapters over `RedisState` and `RouterMetrics`: the
policies themselves stay pure (router/policies.py)."""

from __future__ import annotations

import time

from controlplane.router.metrics import RouterMetrics
from controlplane.router.policies import Decision, Policy
from controlplane.router.precise import PrefixMatch
from controlplane.router.state import Lookup, RedisState

NO_LOOKUP = Lookup()  # frozen: shared by requests that need no lookup
PREDICTED_BLOCKS = "glmctl_router_kv_predicted_hit_blocks_total"
PROMPT_BLOCKS = "glmctl_router_kv_prompt_blocks_total"


async def lookup(
    state: RedisState,
    metrics: RouterMetrics,
    hashes: list[str],
    session_key: str,
    key_hash: str,
    limits: tuple[float, int],
) -> Lookup | float:
    """Prefix, session (with its binding's age: router/sessions.py), rate limit in one
    round trip; rate limited: seconds to wait."""
    rate, burst = limits
    if not hashes and not session_key and rate <= 0:
        return NO_LOOKUP
    began = time.perf_counter()
    found = await state.lookup(hashes, session_key, key_hash if rate > 0 else "", rate, burst)
    metrics.observe("glmctl_router_redis_seconds", time.perf_counter() - began)
    if not found.allowed:
        return max(found.retry_after_s, 0.001)
    return found


def record(
    state: RedisState,
    metrics: RouterMetrics,
    policy: Policy,
    decision: Decision,
    ctx: Lookup,
    hashes: list[str],
    session_key: str,
) -> None:
    """Count the decision; teach the prefix index and session table (buffered writes)."""
    endpoint_id = decision.endpoint.endpoint_id
    metrics.inc(
        "glmctl_router_decisions_total",
        (("policy", policy.name), ("endpoint", endpoint_id), ("reason", decision.reason)),
    )
    if hashes:
        matched = ctx.prefix_depth if ctx.prefix_endpoint == endpoint_id else 0
        metrics.inc("glmctl_router_prefix_blocks_total", (), len(hashes))
        metrics.inc("glmctl_router_prefix_blocks_matched_total", (), matched)
    if hashes or session_key:
        state.record(endpoint_id, hashes, session_key)


def record_predicted(metrics: RouterMetrics, endpoint_id: str, kv: PrefixMatch) -> None:
    """What precise_prefix expects the chosen engine to find cached (its leading run from
    the KV events) against the prompt's full blocks: set beside the engine's own
    prefix-cache counters, the difference is the index's error."""
    labels = (("endpoint", endpoint_id),)
    metrics.inc(PREDICTED_BLOCKS, labels, kv.runs.get(endpoint_id, 0))
    metrics.inc(PROMPT_BLOCKS, labels, kv.blocks)
