"""Prefill/decode disaggregation in the simulator: the KV hand-off between two replicas.

A prefill-role replica (`--pd-role prefill`) prefills a request and holds its KV under a
key until the decode side pulls it; a decode-role replica (`--pd-role decode`) pulls the
KV from the prefill replica named in the request, then decodes. The keys are the engines'
own request fields (the router sets them, router/pd_route.py):

- SGLang 0.5.23 (disaggregation/mini_lb.py, docs/advanced_features/pd_disaggregation.md):
  the same body goes to P and D with `bootstrap_host`, `bootstrap_port` (P's bootstrap
  server; here P's own HTTP port) and `bootstrap_room` (random 0..2^63-1). The key is the
  room. P answers once its KV was sent (or the bootstrap timed out).
- vLLM 0.32.0 NixlConnector (nixl/pull_scheduler.py `request_finished`, the toy proxy of
  tests/v1/kv_connector/nixl_integration): P gets `kv_transfer_params.do_remote_decode` and
  answers with `kv_transfer_params` {do_remote_prefill, remote_engine_id, remote_request_id,
  remote_block_ids, remote_host, remote_port, tp_size, ...}; D gets those and reads the
  KV. The key is `remote_request_id`.

The transfer itself is `GET /sim/pd/kv?key=K` on P's HTTP port: P answers `ready` when the
prompt is prefilled, holds the connection for the transfer time (prompt KV bytes from the
architecture, capacity/pd_capacity.py `transfer_between`, over `link_gbps` per parallel
link, divided by the time scale), then `done`. A P that dies mid-transfer resets the
connection, so the decode side fails the request as the engine does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controlplane.catalog import pd_metrics as pm
from controlplane.engines.sim.metrics import Histogram
from controlplane.spec import EngineKind, Topology

if TYPE_CHECKING:
    import aiohttp

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ROLES = ("prefill", "decode")
KV_PATH = "/sim/pd/kv"
# RDMA class: one NDR port per GPU on HGX nodes (spec/disaggregation.py DEFAULT_LINK_GBPS).
DEFAULT_LINK_GBPS = 400.0
# SGLang's SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT and ..._WAITING_TIMEOUT (300 s each,
# environ.py); vLLM's KV lease is 30 s extended by heartbeats (nixl kv_lease_duration).
DEFAULT_TIMEOUT_S = 300.0


class TransferFailed(Exception):
    """The decode side could not get the KV (P unreachable, gone, or too slow)."""

    def __init__(self, reason: str, bootstrap: bool) -> None:
        super().__init__(reason)
        self.bootstrap = bootstrap  # failed before P acknowledged the request


@dataclass(frozen=True)
class PdConfig:
    role: str  # prefill | decode
    flavor: EngineKind
    link_gbps: float
    timeout_s: float  # wall seconds a side waits for the other
    kv_bytes_per_token: int
    links: int  # parallel links (prefill ranks holding distinct KV heads)
    time_scale: float
    engine_id: str  # vLLM's remote_engine_id of this replica

    def transfer_seconds(self, tokens: int) -> float:
        """Simulated seconds to move `tokens` tokens of KV."""
        return self.kv_bytes_per_token * tokens / (self.links * self.link_gbps * 1e9 / 8)


def pd_config(
    topo: Topology, role: str, flavor: EngineKind, link_gbps: float, timeout_s: float,
    time_scale: float,
) -> PdConfig:  # fmt: skip
    """The PD settings of one replica of `topo` (its pool's colocated topology)."""
    import uuid

    from controlplane.capacity.pd_capacity import transfer_between
    from controlplane.spec.disaggregation import NetworkSpec

    if role not in ROLES:
        raise ValueError(f"--pd-role must be prefill or decode, not {role!r}")
    figures = transfer_between(topo, topo, NetworkSpec(link_gbps=link_gbps), "sim", 1)
    return PdConfig(
        role, flavor, link_gbps, timeout_s, figures.kv_bytes_per_token,
        figures.parallel_links, time_scale, uuid.uuid4().hex,
    )  # fmt: skip


_LATENCY_BOUNDS: list[float] = sorted({b for m in pm.PD_ENGINES
                                      for b in m.transfer_latency.bounds})  # fmt: skip
_SIZE_BOUNDS: list[float] = sorted({b for m in pm.PD_ENGINES
                                   for h in (m.transfer_speed, m.transfer_bytes) if h
                                   for b in h.bounds})  # fmt: skip


@dataclass
class PdStats:
    """The PD queues and transfer figures a replica reports (catalog/pd_metrics.py)."""

    bootstrap_queue: int = 0  # P: prefilled or prefilling, decode side not connected yet
    inflight_queue: int = 0  # P: KV being sent
    prealloc_queue: int = 0  # D: waiting for P's KV to be ready
    transfer_queue: int = 0  # D: KV arriving
    failed_transfers: int = 0
    failed_bootstraps: int = 0
    latency: Histogram = field(default_factory=lambda: Histogram(_LATENCY_BOUNDS))
    size: Histogram = field(default_factory=lambda: Histogram(_SIZE_BOUNDS))


@dataclass(eq=False)
class Handoff:
    """One request's KV on the prefill side."""

    tokens: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    release: Callable[[], None] | None = None  # frees the KV the prefill replica holds


class Handoffs:
    """Prefill side: KV held per key until pulled, or forgotten (the prefill request's
    timeout: SGLang's bootstrap timeout, vLLM's KV lease)."""

    def __init__(self, config: PdConfig, stats: PdStats) -> None:
        self.config = config
        self.stats = stats
        self._items: dict[str, Handoff] = {}

    def entry(self, key: str) -> Handoff:
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = Handoff()
        return item

    def ready(self, key: str, tokens: int, release: Callable[[], None]) -> Handoff:
        item = self.entry(key)
        item.tokens = tokens
        item.release = release
        item.ready.set()
        return item

    def forget(self, key: str) -> None:
        """Drop `key` and free its KV (idempotent)."""
        item = self._items.pop(key, None)
        if item is not None and item.release is not None:
            item.release()

    def __len__(self) -> int:
        return len(self._items)

    async def serve(self, key: str, send: Send) -> None:
        """`GET /sim/pd/kv?key=K`: `ready N` once prefilled, then `done` after the transfer."""
        cfg, stats = self.config, self.stats
        item = self._items.get(key)
        if item is None and cfg.flavor is EngineKind.VLLM:  # vLLM: P answered first
            await _plain(send, 404, b"unknown remote_request_id\n")
            return
        item = item or self.entry(key)
        try:
            await asyncio.wait_for(item.ready.wait(), cfg.timeout_s)
        except TimeoutError:
            self.forget(key)
            await _plain(send, 504, b"prefill did not finish in time\n")
            return
        seconds = cfg.transfer_seconds(item.tokens)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"ready %d\n" % item.tokens,
                    "more_body": True})  # fmt: skip
        stats.inflight_queue += 1
        try:
            await asyncio.sleep(seconds / cfg.time_scale)
        finally:
            stats.inflight_queue -= 1
        if cfg.flavor is EngineKind.SGLANG:  # SGLang measures the transfer on P
            stats.latency.observe(seconds * 1000)
            stats.size.observe(cfg.kv_bytes_per_token * item.tokens / max(seconds, 1e-9) / 1e9)
        item.done.set()
        self.forget(key)
        await send({"type": "http.response.body", "body": b"done\n"})


async def pull_kv(
    session: aiohttp.ClientSession, config: PdConfig, stats: PdStats, source: tuple[str, int],
    key: str,
) -> int:  # fmt: skip
    """Decode side: the KV of `key` from the prefill replica at `source` (host, port); its
    prompt tokens. Raises TransferFailed (the caller answers as the engine does)."""
    import aiohttp

    stats.prealloc_queue += 1
    in_transfer = False
    began = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    try:
        url = f"http://{source[0]}:{source[1]}{KV_PATH}?key={key}"
        async with session.get(url, timeout=timeout) as reply:
            if reply.status != 200:
                text = (await reply.text()).strip()
                raise TransferFailed(f"prefill answered {reply.status}: {text}", True)
            line = await reply.content.readline()
            tokens = int(line.split()[1]) if line.startswith(b"ready ") else -1
            stats.prealloc_queue -= 1
            stats.transfer_queue += 1
            in_transfer = True
            began = time.monotonic()
            if tokens < 0 or await reply.content.readline() != b"done\n":
                raise TransferFailed("the prefill instance closed the transfer", False)
    except TimeoutError:
        raise TransferFailed(
            f"timed out after {time.monotonic() - began:.1f}s in KVPoll.WaitingForInput",
            not in_transfer,
        ) from None
    except aiohttp.ClientError as exc:
        raise TransferFailed(
            f"Failed to get kvcache from prefill instance, it might be dead ({exc})",
            not in_transfer,
        ) from None
    finally:
        if in_transfer:
            stats.transfer_queue -= 1
        else:
            stats.prealloc_queue -= 1
    if config.flavor is EngineKind.VLLM:  # NIXL measures the read on D
        stats.latency.observe((time.monotonic() - began) * config.time_scale)
        stats.size.observe(float(config.kv_bytes_per_token * tokens))
    return tokens


def render_pd(flavor: EngineKind, stats: PdStats, model: str, engine_type: str) -> list[str]:
    """The PD series of `flavor` (catalog/pd_metrics.py) as exposition lines."""
    names = pm.PD_BY_FLAVOR[flavor.value]
    if flavor is EngineKind.VLLM:
        labels = f'engine="0",model_name="{model}"'
    else:
        labels = (f'model_name="{model}",engine_type="{engine_type}",tp_rank="0",'
                  'pp_rank="0",moe_ep_rank="0"')  # fmt: skip
    failed = [n for n in names.transfer_failures if n != names.failed_bootstraps]
    rows = [
        ("gauge", names.queue("prefill_bootstrap"), stats.bootstrap_queue, "Bootstrap queue."),
        ("gauge", names.queue("prefill_transfer"), stats.inflight_queue, "Prefill inflight queue."),
        ("gauge", names.queue("decode_prealloc"), stats.prealloc_queue, "Decode prealloc queue."),
        ("gauge", names.queue("decode_transfer"), stats.transfer_queue, "Decode transfer queue."),
        ("counter", failed[0] if failed else "", stats.failed_transfers, "Failed KV transfers."),
        ("counter", names.failed_bootstraps, stats.failed_bootstraps, "Failed bootstraps."),
    ]  # fmt: skip
    out: list[str] = []
    for kind, name, value, help_text in rows:
        if name:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
                    f"{name}{{{labels}}} {float(value)!r}"]  # fmt: skip
    out += stats.latency.lines(names.transfer_latency, labels, "KV transfer latency.")
    size = names.transfer_speed or names.transfer_bytes
    if size is not None:
        out += stats.size.lines(size, labels, "KV transfer size or speed.")
    return out


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
