"""`precise_prefix` on the request path: one KV-event subscriber per router process.

`PreciseRouting` owns a `KvSubscriber` (kv_subscriber.py) and a `PreciseLookup`
(precise.py). The app calls:
- `sync(endpoints)` after every registry refresh: each registered endpoint that publishes
  KV events (`EndpointInfo.kv_events`, one URL per DP rank) is watched, with its replay
  URLs and engine id; endpoints gone from the registry (or no longer publishing) are
  unwatched and their blocks forgotten;
- `match(payload, chat, candidates)` per request: each candidate's leading cached blocks
  (`PrefixMatch`), or None when the policy must fall back to the approximate index: no
  tokenizer for the served model, a body the engine would not hash as we do, or a
  candidate without a KV feed (its cache is unknown, so comparing runs would be unfair),
  or an engine whose events carry another block size than the router hashes at (SGLang
  picks its own page size for some attention backends: no hash would ever match).
  Each fallback reason is logged once per process and counted in
  `glmctl_router_kv_fallbacks_total{reason}`;
- `metrics_text()` for `/metrics`, `close()` on shutdown.
A DP rank is its own cache: ranks are watched as `<endpoint>#dp<r>` and an endpoint's run
is its best rank's (the engine's DP balancer picks the rank; a run on one rank is the best
the endpoint may offer).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from controlplane.router.kv_index import KvIndex
from controlplane.router.kv_subscriber import KvFeed, KvSubscriber, render_metrics
from controlplane.router.kv_tokens import PreciseSettings, token_ids_fn
from controlplane.router.policies import Tuning
from controlplane.router.precise import PreciseLookup, PrefixMatch
from controlplane.router.registry import EndpointInfo

if TYPE_CHECKING:
    from controlplane.router.config import RouterConfig

log = logging.getLogger(__name__)

FALLBACK_METRIC = "glmctl_router_kv_fallbacks_total"
FEEDS_METRIC = "glmctl_router_kv_feeds"
REASONS = {
    "no_tokenizer": "no tokenizer for the served model: routing as prefix_affinity",
    "no_feed": "an endpoint publishes no KV events: routing as prefix_affinity",
    "unhashable": "a request the router cannot hash as the engine does",
    "block_size": "an engine's KV events carry another block size than the router hashes"
    " (the engine chose its own page size): routing as prefix_affinity",
}


def feeds_of(info: EndpointInfo) -> list[KvFeed]:
    """The KV feeds an endpoint registered: one per DP rank (none: it publishes nothing)."""
    urls = info.kv_events
    replays = info.kv_replay
    feeds = []
    for rank, url in enumerate(urls):
        feed_id = info.endpoint_id if len(urls) == 1 else f"{info.endpoint_id}#dp{rank}"
        replay = replays[rank] if rank < len(replays) else None
        feeds.append(KvFeed(feed_id, url, replay, info.engine_id))
    return feeds


def endpoint_runs(runs: Mapping[str, int], feeds: Mapping[str, str]) -> dict[str, int]:
    """Per-feed runs folded to their endpoints (`feeds`: feed id -> endpoint id), best rank."""
    folded: dict[str, int] = {}
    for feed_id, run in runs.items():
        endpoint = feeds.get(feed_id)
        if endpoint is not None and run > folded.get(endpoint, 0):
            folded[endpoint] = run
    return folded


class PreciseRouting:
    """The event index of one router process and the lookup against it."""

    def __init__(self, settings: PreciseSettings, subscriber: KvSubscriber | None = None) -> None:
        self.settings = settings
        self.subscriber = subscriber or KvSubscriber(KvIndex())
        self.lookup = PreciseLookup(
            self.subscriber.index,
            token_ids_fn(settings),
            settings.block_size,
            settings.seed,
            settings.hash_scheme,
        )
        self.fallbacks: dict[str, int] = {}
        self._feeds: dict[str, KvFeed] = {}  # feed id -> feed
        self._owner: dict[str, str] = {}  # feed id -> endpoint id
        self._published: set[str] = set()  # endpoints with at least one feed

    def tuning(self, base: Tuning) -> Tuning:
        """`base` with the topology's precise_prefix weights."""
        s = self.settings
        return replace(base, prefix_weight=s.prefix, queue_weight=s.queue, kv_weight=s.kv)

    def sync(self, endpoints: Mapping[str, EndpointInfo]) -> None:
        """Watch every registered feed, unwatch the ones gone (idempotent)."""
        wanted: dict[str, KvFeed] = {}
        owner: dict[str, str] = {}
        for info in endpoints.values():
            for feed in feeds_of(info):
                wanted[feed.endpoint_id] = feed
                owner[feed.endpoint_id] = info.endpoint_id
        for feed_id in set(self._feeds) - set(wanted):
            self.subscriber.unwatch(feed_id)
        for feed_id, feed in wanted.items():
            if self._feeds.get(feed_id) != feed:
                self.subscriber.watch(feed)
        self._feeds, self._owner = wanted, owner
        self._published = set(owner.values())

    def match(
        self, payload: dict[str, Any], chat: bool, candidates: Sequence[EndpointInfo]
    ) -> PrefixMatch | None:
        """Each candidate's leading cached blocks of this prompt; None: fall back."""
        if self.lookup.token_ids is None:
            return self._fallback("no_tokenizer")
        if any(c.endpoint_id not in self._published for c in candidates):
            return self._fallback("no_feed")
        sizes = self.subscriber.index.block_sizes
        if any(size != self.settings.block_size for size in sizes.values()):
            return self._fallback("block_size")
        found = self.lookup.match(payload, chat)
        if found is None:
            return self._fallback("unhashable")
        runs = endpoint_runs(found.runs, self._owner)
        evicted = frozenset(self._owner[f] for f in found.evicted if f in self._owner)
        return PrefixMatch(runs, found.blocks, evicted)

    def _fallback(self, reason: str) -> PrefixMatch | None:
        """Count (and log once) a request routed as prefix_affinity; returns None."""
        if reason not in self.fallbacks:  # once per process and reason
            log.warning("precise_prefix: %s", REASONS[reason])
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1
        return None

    def metrics_text(self) -> str:
        """The subscriber's metrics and the fallback counter, Prometheus text."""
        lines = [
            f"# HELP {FEEDS_METRIC} KV-event feeds (endpoint DP ranks) this router follows.",
            f"# TYPE {FEEDS_METRIC} gauge",
            f"{FEEDS_METRIC} {len(self._feeds)}",
            f"# HELP {FALLBACK_METRIC} Requests precise_prefix routed as prefix_affinity.",
            f"# TYPE {FALLBACK_METRIC} counter",
        ]
        for reason in sorted(REASONS):
            count = self.fallbacks.get(reason, 0)
            lines.append(f'{FALLBACK_METRIC}{{reason="{reason}"}} {count}')
        text = render_metrics(self.subscriber.index, self.subscriber.stats)
        return text + "\n".join(lines) + "\n"

    async def close(self) -> None:
        await self.subscriber.close()


def precise_routing(config: RouterConfig) -> PreciseRouting | None:
    """The router process's precise routing when its config carries `--precise` settings."""
    if not config.precise:
        return None
    return PreciseRouting(PreciseSettings.from_json(config.precise))
