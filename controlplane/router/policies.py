"""Routing policies: pure functions of a snapshot, registered by name.

A policy sees a `RouteContext` (the candidate endpoints with their load, plus what the
one Redis lookup found: the deepest prefix match and the session binding) and returns a
`Decision`. No I/O, no clocks, no randomness of its own: the caller passes a sequence
number (round robin) and two uniform draws (power of two). Redis access, scraping and HTTP
live in the adapters around them (`state.py`, `collector.py`, `app.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from controlplane.errors import UserError

LOOKUP_PREFIX = "prefix"
LOOKUP_SESSION = "session"


@dataclass(frozen=True, slots=True)
class EndpointView:
    """One healthy engine endpoint as a policy sees it."""

    endpoint_id: str
    url: str
    model: str
    inflight: int = 0  # requests in flight through all routers (own exact, others <= 0.1 s old)
    running: int = 0  # engine's own counts from its last /metrics scrape
    waiting: int = 0
    kv_usage: float = 0.0
    kind: str = "engine"  # engine | external
    role: str = "pool"  # pool | overflow (router/overflow.py picks who may be chosen)
    capacity: int = 0  # most requests in flight; 0: the router's max_queue_per_endpoint

    @property
    def load(self) -> int:
        """Requests the engine holds: the fresher router count, or the engine's if larger
        (traffic that bypasses the routers)."""
        return max(self.inflight, self.running + self.waiting)


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs of the affinity policies (SGLang's cache-aware router uses the same shape:
    cache_threshold 0.5, balance_abs_threshold 32, balance_rel_threshold 1.0001)."""

    prefix_min_match: float = 0.5  # matched fraction of the prompt's blocks to prefer a match
    balance_abs: int = 8  # preferred endpoint is overloaded if its load exceeds the least
    balance_rel: float = 1.5  # loaded one by more than balance_abs AND by this factor
    # precise_prefix weights (topology `router.precise_prefix`). KV usage (blocks held by
    # running requests) is 0 by default: it follows the mix of prompts an engine runs, so at
    # weight 1 it pushed requests off the engines holding their prefix, which then copied
    # prefixes and evicted others (hit ratio 0.64-0.82 against 0.85-0.93 at 0, same
    # benchmark; docs/guides/kv-aware-routing.md). Load already counts a full engine's queue.
    prefix_weight: float = 1.0
    kv_weight: float = 0.0
    queue_weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RouteContext:
    """Everything a policy may look at. `candidates` is never empty."""

    candidates: tuple[EndpointView, ...]
    sequence: int = 0
    draws: tuple[float, float] = (0.0, 0.5)
    prefix_endpoint: str | None = None
    prefix_depth: int = 0
    prefix_blocks: int = 0
    session_endpoint: str | None = None
    tuning: Tuning = field(default_factory=Tuning)
    # precise_prefix: leading blocks of the prompt each endpoint holds, from the engines'
    # KV events (router/kv_index.py); None when no event index or tokenizer covers it.
    kv_runs: Mapping[str, int] | None = None
    kv_blocks: int = 0  # the prompt's full blocks at the engine's block size
    kv_evicted: frozenset[str] = frozenset()  # endpoints whose events evicted block 0


@dataclass(frozen=True, slots=True)
class Decision:
    endpoint: EndpointView
    reason: str  # e.g. "prefix_hit", "prefix_overloaded", "session_new"


PolicyFn = Callable[[RouteContext], Decision]


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    choose: PolicyFn
    lookups: frozenset[str] = frozenset()  # what the Redis lookup must fetch for it


def round_robin(ctx: RouteContext) -> Decision:
    """Each router cycles through the candidates in order."""
    return Decision(ctx.candidates[ctx.sequence % len(ctx.candidates)], "round_robin")


def least_load(ctx: RouteContext) -> Decision:
    """The lowest `load`; ties rotate with the sequence so equal endpoints share work."""
    count = len(ctx.candidates)
    best = min(
        range(count),
        key=lambda i: (ctx.candidates[i].load, (i - ctx.sequence) % count),
    )
    return Decision(ctx.candidates[best], "least_load")


def power_of_two(ctx: RouteContext) -> Decision:
    """Two candidates drawn at random; the less loaded wins (Mitzenmacher's two choices)."""
    count = len(ctx.candidates)
    if count == 1:
        return Decision(ctx.candidates[0], "power_of_two")
    first = min(int(ctx.draws[0] * count), count - 1)
    second = min(int(ctx.draws[1] * (count - 1)), count - 2)
    second = second + 1 if second >= first else second
    a, b = ctx.candidates[first], ctx.candidates[second]
    return Decision(a if a.load <= b.load else b, "power_of_two")


def _overloaded(preferred: EndpointView, ctx: RouteContext) -> bool:
    least = min(c.load for c in ctx.candidates)
    tuning = ctx.tuning
    return (
        preferred.load - least > tuning.balance_abs and preferred.load > least * tuning.balance_rel
    )


def _find(ctx: RouteContext, endpoint_id: str | None) -> EndpointView | None:
    if endpoint_id is None:
        return None
    for candidate in ctx.candidates:
        if candidate.endpoint_id == endpoint_id:
            return candidate
    return None


def prefix_affinity(ctx: RouteContext) -> Decision:
    """The endpoint holding the deepest cached prefix of this prompt, unless it is
    overloaded or the match is too short; then the least loaded one."""
    preferred = _find(ctx, ctx.prefix_endpoint)
    if preferred is None:
        return Decision(least_load(ctx).endpoint, "prefix_miss")
    matched = ctx.prefix_depth / max(ctx.prefix_blocks, 1)
    if matched < ctx.tuning.prefix_min_match:
        return Decision(least_load(ctx).endpoint, "prefix_short")
    if _overloaded(preferred, ctx):
        return Decision(least_load(ctx).endpoint, "prefix_overloaded")
    return Decision(preferred, "prefix_hit")


def session(ctx: RouteContext) -> Decision:
    """The endpoint this session was bound to, unless gone or overloaded; else least load
    (the caller then binds the session to the new choice)."""
    bound = _find(ctx, ctx.session_endpoint)
    if bound is None:
        return Decision(least_load(ctx).endpoint, "session_new")
    if _overloaded(bound, ctx):
        return Decision(least_load(ctx).endpoint, "session_overloaded")
    return Decision(bound, "session_hit")


def precise_prefix(ctx: RouteContext) -> Decision:
    """The best of: cached fraction x prefix_weight - extra load x queue_weight - KV usage x
    kv_weight, the cache measured from the engines' own KV events. Extra load is the
    endpoint's load above the least loaded one's in units of `balance_abs` requests, so
    with unit weights a whole-prompt hit is worth up to `balance_abs` requests of queue
    (prefix_affinity's overload bound, made continuous). Without an event index for this
    prompt, the approximate `prefix_affinity` decides (reason `approx_*`); so it does when
    no engine holds the prompt's first block yet (`cold_*`): the routers' own recent
    decisions keep a new prefix on one engine while its first requests are in prefill and
    their blocks not yet announced, unless that engine's events said it evicted the
    prompt's first block since (`cold_evicted`: the least loaded engine)."""
    runs = ctx.kv_runs
    if runs is None or not runs:
        fallback = prefix_affinity(ctx)
        label = "approx" if runs is None else "cold"
        if runs is not None and fallback.endpoint.endpoint_id in ctx.kv_evicted:
            # The routers sent this prefix there, but its events say it was evicted since:
            # no engine holds it, so the least loaded one prefills it (the events win).
            return Decision(least_load(ctx).endpoint, "cold_evicted")
        return Decision(fallback.endpoint, f"{label}_{fallback.reason}")
    tuning = ctx.tuning
    blocks = max(ctx.kv_blocks, 1)
    least = min(c.load for c in ctx.candidates)
    scale = max(tuning.balance_abs, 1)
    count = len(ctx.candidates)

    def score(i: int) -> tuple[float, int]:
        c = ctx.candidates[i]
        cached = runs.get(c.endpoint_id, 0) / blocks
        value = (
            tuning.prefix_weight * cached
            - tuning.queue_weight * (c.load - least) / scale
            - tuning.kv_weight * c.kv_usage
        )
        return value, -((i - ctx.sequence) % count)  # ties rotate, as in least_load

    best = ctx.candidates[max(range(count), key=score)]
    return Decision(best, "precise_hit" if runs.get(best.endpoint_id) else "precise_miss")


def default_policies() -> dict[str, Policy]:
    """A fresh registry of the built-in policies; callers may add their own to it."""
    entries = [
        Policy("round_robin", round_robin),
        Policy("least_load", least_load),
        Policy("power_of_two", power_of_two),
        Policy("prefix_affinity", prefix_affinity, frozenset({LOOKUP_PREFIX})),
        Policy("session", session, frozenset({LOOKUP_SESSION})),
        # The prefix lookup feeds its fallback to the approximate index.
        Policy("precise_prefix", precise_prefix, frozenset({LOOKUP_PREFIX})),
    ]
    return {entry.name: entry for entry in entries}


def get_policy(registry: Mapping[str, Policy], name: str) -> Policy:
    """The policy called `name`; UserError naming the valid ones otherwise."""
    policy = registry.get(name)
    if policy is None:
        raise UserError(
            f"unknown routing policy `{name}`.", fix=f"use one of: {', '.join(sorted(registry))}."
        )
    return policy
