"""Consume the engines' KV-event streams into a `KvIndex` (asyncio + pyzmq).

One `KvSubscriber` per router process subscribes to every endpoint of its deployment
(ZMQ PUB fans out to any number of subscribers, so two routers each keep a full index
and never ask Redis on the request path). Per endpoint a task:
1. connects a SUB socket to the engine's PUB endpoint,
2. asks the replay (ROUTER) endpoint for everything still buffered from seq 0, so a
   router that (re)starts learns what the engine cached before it came up (up to the
   engine's `buffer_steps` batches; blocks stored earlier are unknown, a miss not a lie),
3. applies live batches in sequence order. A gap (seq > last + 1) triggers a resync
   through the replay socket from last + 1; if the engine no longer buffers that far back,
   the endpoint's blocks are dropped (they may include evicted ones) and rebuilt from
   what follows. A sequence that goes backwards means the engine restarted: its blocks
   are dropped, as on AllBlocksCleared or a new engine id (`watch` with another id).
4. replays from 0 again whenever the SUB socket reconnects: PUB/SUB drops what an engine
   publishes before the subscriber has (re)connected, and a restarted engine's first
   batches are exactly that.
Contracts: `watch`/`unwatch` are idempotent; `close()` cancels every task and closes
every socket; errors on one endpoint never stop another's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import zmq
import zmq.asyncio

from controlplane.router.kv_index import KvIndex
from controlplane.router.kv_wire import EventBatch, WireError, decode_seq, encode_seq, parse_batch

log = logging.getLogger(__name__)
REPLAY_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class KvFeed:
    """Where one endpoint publishes: vLLM's `endpoint` / `replay_endpoint` as connect URLs."""

    endpoint_id: str
    publisher: str  # e.g. tcp://10.0.0.5:5557
    replay: str | None = None  # e.g. tcp://10.0.0.5:5558
    engine_id: str = ""  # changes when the engine behind the endpoint is replaced
    topic: str = ""


@dataclass
class KvStats:
    """Counters behind the `glmctl_router_kv_*` metrics (one per router process)."""

    batches: int = 0
    events: int = 0
    resyncs: int = 0
    resync_failures: int = 0
    restarts: int = 0
    bad_frames: int = 0
    lag_s: float = 0.0  # receive time minus the batch's ts, last batch
    lag_max_s: float = 0.0
    last_seq: dict[str, int] = field(default_factory=dict)

    def observe_lag(self, ts: float) -> None:
        self.lag_s = max(0.0, time.time() - ts)
        self.lag_max_s = max(self.lag_max_s, self.lag_s)


METRIC_HELP = {
    "glmctl_router_kv_index_blocks": "KV blocks the router's event index holds, by endpoint.",
    "glmctl_router_kv_event_lag_seconds": "Receive time minus the engine's batch timestamp.",
    "glmctl_router_kv_event_batches_total": "KV event batches applied.",
    "glmctl_router_kv_resyncs_total": "Sequence gaps repaired through the replay socket.",
    "glmctl_router_kv_resync_failures_total": "Gaps the replay buffer no longer covered.",
    "glmctl_router_kv_engine_restarts_total": "Endpoints whose blocks were dropped on restart.",
}


def render_metrics(index: KvIndex, stats: KvStats) -> str:
    """Prometheus text exposition of the index and subscriber metrics."""
    lines: list[str] = []

    def family(name: str, kind: str) -> None:
        lines.append(f"# HELP {name} {METRIC_HELP[name]}")
        lines.append(f"# TYPE {name} {kind}")

    family("glmctl_router_kv_index_blocks", "gauge")
    for endpoint, count in sorted(index.sizes().items()):
        lines.append(f'glmctl_router_kv_index_blocks{{endpoint="{endpoint}"}} {count}')
    family("glmctl_router_kv_event_lag_seconds", "gauge")
    lines.append(f"glmctl_router_kv_event_lag_seconds {stats.lag_s:.6f}")
    for name, value in (
        ("glmctl_router_kv_event_batches_total", stats.batches),
        ("glmctl_router_kv_resyncs_total", stats.resyncs),
        ("glmctl_router_kv_resync_failures_total", stats.resync_failures),
        ("glmctl_router_kv_engine_restarts_total", stats.restarts),
    ):
        family(name, "counter")
        lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"


class KvSubscriber:
    """Keeps `index` in step with the watched endpoints' event streams."""

    def __init__(self, index: KvIndex | None = None) -> None:
        self.index = index or KvIndex()
        self.stats = KvStats()
        self._ctx = zmq.asyncio.Context()
        self._feeds: dict[str, KvFeed] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._synced: dict[str, asyncio.Event] = {}
        self._pending: dict[str, list[tuple[int, EventBatch]]] = {}
        self._last_ts: dict[str, float] = {}

    def watch(self, feed: KvFeed) -> None:
        """Follow `feed` (replacing the endpoint's previous feed, whose blocks are dropped
        when the engine id or address changed)."""
        previous = self._feeds.get(feed.endpoint_id)
        if previous == feed:
            return
        if previous is not None:
            self.stats.restarts += 1  # a new engine id or address behind the endpoint
        self.unwatch(feed.endpoint_id)
        self._feeds[feed.endpoint_id] = feed
        self._synced[feed.endpoint_id] = asyncio.Event()
        self._tasks[feed.endpoint_id] = asyncio.get_running_loop().create_task(self._follow(feed))

    def unwatch(self, endpoint_id: str) -> None:
        """Stop following an endpoint and forget its blocks (idempotent)."""
        task = self._tasks.pop(endpoint_id, None)
        if task is not None:
            task.cancel()
        self._feeds.pop(endpoint_id, None)
        self._synced.pop(endpoint_id, None)
        self.stats.last_seq.pop(endpoint_id, None)
        self.index.clear(endpoint_id)

    async def wait_synced(self, endpoint_id: str, timeout: float = 5.0) -> None:
        """Until the endpoint's initial replay is applied (tests, startup)."""
        await asyncio.wait_for(self._synced[endpoint_id].wait(), timeout)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._ctx.destroy(linger=0)

    async def _follow(self, feed: KvFeed) -> None:
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, feed.topic.encode())
        # Every (re)connection of the SUB socket: batches published while it was away (an
        # engine restarted on the same address publishes before ZMQ reconnects) are lost
        # to PUB/SUB, so each connection is followed by a replay from 0.
        monitor = sub.get_monitor_socket(zmq.EVENT_CONNECTED)
        poller = zmq.asyncio.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        sub.connect(feed.publisher)
        try:
            # Subscribe before replaying, so nothing published meanwhile is missed.
            if feed.replay is not None:
                await self._replay(feed, 0)
            self._synced[feed.endpoint_id].set()
            while True:
                ready = dict(await poller.poll())
                if monitor in ready:
                    await monitor.recv_multipart()
                    if feed.replay is not None:
                        await self._replay(feed, 0)
                if sub in ready:
                    self._on_live(feed, await sub.recv_multipart())
                if self._gap(feed.endpoint_id):
                    await self._resync(feed)
        except asyncio.CancelledError:
            raise
        except Exception:  # one broken feed must not stop the others
            log.exception("KV event feed %s failed", feed.endpoint_id)
        finally:
            sub.disable_monitor()
            monitor.close(linger=0)
            sub.close(linger=0)

    def _on_live(self, feed: KvFeed, frames: list[bytes]) -> None:
        if len(frames) != 3:
            self.stats.bad_frames += 1
            return
        try:
            seq = decode_seq(frames[1])
            batch = parse_batch(frames[2])
        except WireError as exc:
            self.stats.bad_frames += 1
            log.warning("bad KV event frame from %s: %s", feed.endpoint_id, exc)
            return
        self._pending.setdefault(feed.endpoint_id, []).append((seq, batch))

    def _gap(self, endpoint: str) -> bool:
        """Apply pending live batches in order; True when one needs a replay first (a gap
        after the last applied batch, or an engine that restarted its sequence)."""
        pending = self._pending.pop(endpoint, [])
        for index, (seq, batch) in enumerate(pending):
            last = self.stats.last_seq.get(endpoint)
            if last is not None and seq <= last:
                # Replay overlaps live delivery: an old seq with an old ts is a duplicate.
                # An old seq with a newer ts is a restarted engine counting from 0 again.
                if batch.ts <= self._last_ts.get(endpoint, 0.0):
                    continue
                self._restarted(endpoint)
                self._pending[endpoint] = pending[index:]
                return True  # replay the new engine's history from 0
            if last is not None and seq > last + 1:
                self._pending[endpoint] = pending[index:]
                return True
            self._apply(endpoint, seq, batch)
        return False

    def _restarted(self, endpoint: str) -> None:
        """The engine behind `endpoint` counts from 0 again: its blocks are gone."""
        self.stats.restarts += 1
        self.index.clear(endpoint)
        self.stats.last_seq.pop(endpoint, None)

    def _apply(self, endpoint: str, seq: int, batch: EventBatch) -> None:
        self.index.apply(endpoint, batch)
        self.stats.last_seq[endpoint] = seq
        self._last_ts[endpoint] = batch.ts
        self.stats.batches += 1
        self.stats.events += len(batch.events)
        self.stats.observe_lag(batch.ts)

    async def _resync(self, feed: KvFeed) -> None:
        endpoint = feed.endpoint_id
        start = self.stats.last_seq.get(endpoint, -1) + 1
        self.stats.resyncs += 1
        if feed.replay is not None:
            await self._replay(feed, start)
        if self._gap(endpoint):  # the replay did not cover the gap (buffer wrapped, no answer)
            # Missed events may have removed blocks: drop them all, rebuild from here on.
            self.stats.resync_failures += 1
            self.index.clear(endpoint)
            self.stats.last_seq.pop(endpoint, None)
            self._gap(endpoint)

    async def _replay(self, feed: KvFeed, start: int) -> None:
        """Apply the engine's buffered batches from `start` that are newer than the last
        one applied (a timeout or a bad frame ends the replay early; the caller checks)."""
        assert feed.replay is not None
        dealer = self._ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(feed.replay)
        endpoint = feed.endpoint_id
        try:
            await dealer.send_multipart([b"", encode_seq(start)])
            while True:
                frames = await asyncio.wait_for(dealer.recv_multipart(), REPLAY_TIMEOUT_S)
                if len(frames) != 4:
                    self.stats.bad_frames += 1
                    continue
                seq = decode_seq(frames[2])
                if seq == -1:
                    break
                last = self.stats.last_seq.get(endpoint)
                batch = parse_batch(frames[3])
                if last is not None and seq <= last:
                    if batch.ts <= self._last_ts.get(endpoint, 0.0):
                        continue  # already applied
                    self._restarted(endpoint)  # a newer batch at an old seq: a new engine
                    last = None
                # Apply only the next batch in order: a replay that starts past it (the
                # buffer wrapped) leaves the gap for the caller to see.
                if last is None or seq == last + 1:
                    self._apply(endpoint, seq, batch)
        except (TimeoutError, WireError) as exc:
            log.warning("KV replay from %s failed: %s", endpoint, exc)
        finally:
            dealer.close(linger=0)
