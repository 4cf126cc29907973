"""The simulator's KV-cache events, in vLLM 0.32's wire format (`router/kv_wire.py`).

Opt in with `--kv-events-config JSON`, the same JSON vLLM's flag takes
(`vllm/config/kv_events.py`: enable_kv_cache_events, publisher null|zmq, endpoint
"tcp://*:5557" (bound when it holds `*` or `::`, else connected), replay_endpoint (a ROUTER,
bound), buffer_steps 10000, hwm 100000, max_queue_size 100000, topic ""). With events on,
the simulator keys its prefix cache by the block hashes of the engine it mimics (a
`router/kv_hash.py` scheme over token ids: SGLang's sha256 page chain for the SGLang
flavour, vLLM's sha256_cbor chain for vLLM's; `registry.simulated_hash_scheme`), so
the hashes it publishes are the ones a router computes from the same prompt. What it
publishes, from its KV model (`kv.py`):
- AllBlocksCleared first (a fresh engine holds nothing; a subscriber that knew an earlier
  process at this address drops its blocks),
- BlockStored per contiguous run of blocks newly cached at admission (parent hash, the
  run's token ids, block size 16), BlockRemoved for blocks evicted to make room.
Events of one scheduler step go out as one batch (vLLM publishes once per step too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import zmq
import zmq.asyncio

from controlplane.engines.sim.requests import ApiError, Limits, parse_request
from controlplane.engines.sim.tokenizer import text_rules
from controlplane.errors import UserError
from controlplane.router import kv_hash
from controlplane.router.kv_wire import (
    AllBlocksCleared,
    BlockRemoved,
    BlockStored,
    EventBatch,
    KvEvent,
    encode_batch,
    encode_seq,
)
from controlplane.spec import Topology

END_SEQ = (-1).to_bytes(8, "big", signed=True)
_REMEMBERED_BLOCKS = 1 << 20  # token ids kept per hash for BlockStored (bounded memory)


@dataclass(frozen=True)
class KvEventsConfig:
    """vLLM's `--kv-events-config` (same keys and defaults, vLLM 0.32.0)."""

    enable_kv_cache_events: bool = False
    publisher: str | None = None
    endpoint: str = "tcp://*:5557"
    replay_endpoint: str | None = None
    buffer_steps: int = 10_000
    hwm: int = 100_000
    max_queue_size: int = 100_000
    topic: str = ""

    @property
    def enabled(self) -> bool:
        kind = self.publisher or ("zmq" if self.enable_kv_cache_events else "null")
        return self.enable_kv_cache_events and kind == "zmq"


def parse_config(text: str) -> KvEventsConfig:
    """`--kv-events-config` JSON; UserError naming what to fix."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"--kv-events-config is not JSON: {exc}.",
            fix='pass e.g. \'{"enable_kv_cache_events": true, "endpoint": "tcp://*:5557"}\'.',
        ) from None
    known = {f.name for f in fields(KvEventsConfig)}
    if not isinstance(raw, dict) or set(raw) - known:
        extra = sorted(set(raw) - known) if isinstance(raw, dict) else []
        raise UserError(
            f"--kv-events-config: unknown keys {extra}"
            if extra
            else "--kv-events-config must be a JSON object.",
            fix=f"use vLLM's keys: {', '.join(sorted(known))}.",
        )
    if raw.get("publisher") not in (None, "null", "zmq"):
        raise UserError("--kv-events-config: publisher must be null or zmq.", fix="use zmq.")
    return KvEventsConfig(**raw)


class KvEventPublisher:
    """PUB + replay ROUTER fed by the KV pool (`KvListener`); one per simulator."""

    def __init__(
        self,
        config: KvEventsConfig,
        token_ids: Callable[[list[str]], list[int]],
        block: int,
        scheme: str = kv_hash.VLLM_SHA256_CBOR,
    ) -> None:
        self.config = config
        self.block = block
        kv_hash.scheme_named(scheme)  # ValueError for an unknown scheme, before any socket
        self.scheme = scheme
        self._token_ids = token_ids
        # PUB sends never wait (they drop at the high-water mark): a plain socket will do;
        # the replay ROUTER is served by a task of the simulator's loop.
        self._sync_ctx = zmq.Context()
        self._ctx = zmq.asyncio.Context()
        self._pub = self._sync_ctx.socket(zmq.PUB)
        self._pub.set_hwm(config.hwm)
        self._pub.setsockopt(zmq.LINGER, 0)
        _bind_or_connect(self._pub, config.endpoint)
        self._replay: zmq.asyncio.Socket | None = None
        if config.replay_endpoint:
            self._replay = self._ctx.socket(zmq.ROUTER)
            self._replay.setsockopt(zmq.LINGER, 0)
            _bind_or_connect(self._replay, config.replay_endpoint, always_bind=True)
        self._topic = config.topic.encode()
        self._seq = 0
        self._buffer: deque[tuple[int, bytes]] = deque(maxlen=config.buffer_steps)
        self._pending: list[KvEvent] = [AllBlocksCleared()]
        self._flush_armed = False
        self._blocks: dict[int, tuple[int | None, tuple[int, ...]]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- hashing (the prefix cache's keys while events are on) ---------------------------
    def block_hashes(self, prompt_tokens: list[str]) -> list[int]:
        """The event hashes of the prompt's full blocks; remembers their token ids."""
        ids = self._token_ids(prompt_tokens)
        keys = kv_hash.block_keys(ids, self.block, scheme=self.scheme)
        if len(self._blocks) > _REMEMBERED_BLOCKS:
            self._blocks.clear()  # only costs token ids in later BlockStored events
        parent: int | None = None
        for index, key in enumerate(keys):
            if key not in self._blocks:
                start = index * self.block
                self._blocks[key] = (parent, tuple(ids[start : start + self.block]))
            parent = key
        return keys

    # -- KvListener ---------------------------------------------------------------------
    def stored(self, hashes: Sequence[int]) -> None:
        if not hashes:
            return
        run: list[int] = []
        for key in hashes:
            if run and self._blocks.get(key, (None, ()))[0] != run[-1]:
                self._queue(self._stored_event(run))
                run = []
            run.append(key)
        self._queue(self._stored_event(run))

    def removed(self, hashes: Sequence[int]) -> None:
        self._queue(BlockRemoved(tuple(hashes)))

    def _stored_event(self, run: list[int]) -> BlockStored:
        parent, _ = self._blocks.get(run[0], (None, ()))
        tokens = [t for key in run for t in self._blocks.get(key, (None, ()))[1]]
        return BlockStored(tuple(run), parent, tuple(tokens), self.block)

    def _queue(self, event: KvEvent) -> None:
        self._pending.append(event)
        if not self._flush_armed:  # everything one scheduler step does goes in one batch
            self._flush_armed = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Publish the pending events as one batch (no-op when there are none)."""
        self._flush_armed = False
        if not self._pending:
            return
        batch = EventBatch(ts=time.time(), events=tuple(self._pending), data_parallel_rank=0)
        self._pending = []
        payload = encode_batch(batch)
        seq = self._seq
        self._seq += 1
        with contextlib.suppress(zmq.Again):  # PUB drops at the high-water mark, as vLLM's
            self._pub.send_multipart((self._topic, encode_seq(seq), payload), flags=zmq.NOBLOCK)
        self._buffer.append((seq, payload))

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Publish AllBlocksCleared and serve replay requests (inside the running loop)."""
        self.flush()
        if self._replay is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve_replay())

    async def _serve_replay(self) -> None:
        assert self._replay is not None
        while True:
            frames = await self._replay.recv_multipart()
            if len(frames) != 3:
                continue  # vLLM logs and ignores malformed requests
            client, _, start_bytes = frames
            start = int.from_bytes(start_bytes, "big")
            for seq, payload in list(self._buffer):
                if seq >= start:
                    await self._replay.send_multipart(
                        (client, b"", self._topic, encode_seq(seq), payload)
                    )
            await self._replay.send_multipart((client, b"", b"", END_SEQ, b""))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._ctx.destroy(linger=0)
        self._sync_ctx.destroy(linger=0)


def _bind_or_connect(sock: Any, endpoint: str, always_bind: bool = False) -> None:
    """vLLM's rule: bind wildcard (`*`, `::`), ipc and inproc endpoints, connect the rest
    (the replay ROUTER is always bound)."""
    wildcard = "*" in endpoint or "::" in endpoint
    if always_bind or wildcard or endpoint.startswith(("ipc://", "inproc://")):
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            raise UserError(
                f"cannot bind the KV event endpoint {endpoint}: {exc}.",
                fix="pick a free port in --kv-events-config's endpoint.",
            ) from None
    else:
        sock.connect(endpoint)


def sim_token_ids(topo: Topology) -> Callable[[dict[str, Any], bool], list[int] | None]:
    """Token ids of a request as this topology's simulator computes them (its own request
    parsing, chat rendering and tokenizer), for a router's `PreciseLookup`. None for a
    body the simulator would reject."""
    text = text_rules(topo.spec.simulation.tokenizer)
    limits = Limits(topo.served_model_name, topo.context_length, 0, text)

    def token_ids(body: dict[str, Any], chat: bool) -> list[int] | None:
        try:
            words = parse_request(body, chat, limits, 0).prompt_words
        except ApiError:
            return None
        return text.token_ids(words)

    return token_ids
