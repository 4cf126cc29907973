"""vLLM 0.32's KV-event wire format (router/kv_wire.py).

Payloads are written here with msgpack from the field lists of vLLM 0.32.0's
`vllm/distributed/kv_events.py` (EventBatch array_like; events tagged maps), not with the
encoder under test; the engines tier decodes the simulator's payloads with vLLM's own
msgspec structs.
"""

from __future__ import annotations

import msgpack
import pytest

from controlplane.router.kv_wire import (
    END_SEQ,
    AllBlocksCleared,
    BlockRemoved,
    BlockStored,
    EventBatch,
    WireError,
    decode_seq,
    encode_batch,
    encode_seq,
    parse_batch,
)

VLLM_STORED = {
    "type": "BlockStored",
    "block_hashes": [11, 12],
    "parent_block_hash": None,
    "token_ids": list(range(32)),
    "block_size": 16,
    "lora_id": None,
    "medium": "GPU",
    "lora_name": None,
    "group_idx": 0,
}


def test_parses_a_batch_as_vllm_writes_it() -> None:
    removed = {"type": "BlockRemoved", "block_hashes": [11], "medium": "GPU", "group_idx": 0}
    payload = msgpack.packb([1.5, [VLLM_STORED, removed, {"type": "AllBlocksCleared"}], 0])
    batch = parse_batch(payload)
    assert batch.ts == 1.5 and batch.data_parallel_rank == 0
    stored, gone, cleared = batch.events
    assert stored == BlockStored((11, 12), None, tuple(range(32)), 16, "GPU")
    assert gone == BlockRemoved((11,), "GPU")
    assert cleared == AllBlocksCleared()


def test_byte_hashes_become_their_low_64_bits() -> None:
    digest = bytes(range(32))
    event = {**VLLM_STORED, "block_hashes": [digest], "parent_block_hash": digest}
    stored = parse_batch(msgpack.packb([0.0, [event]])).events[0]
    assert isinstance(stored, BlockStored)
    assert stored.block_hashes == (int.from_bytes(digest[-8:], "big"),)
    assert stored.parent_block_hash == stored.block_hashes[0]


def test_encoder_writes_the_same_maps_vllm_does() -> None:
    batch = EventBatch(2.0, (BlockStored((11, 12), None, tuple(range(32)), 16),), 0)
    assert msgpack.unpackb(encode_batch(batch)) == [2.0, [VLLM_STORED], 0]
    no_rank = msgpack.unpackb(encode_batch(EventBatch(2.0, ())))
    assert no_rank == [2.0, []]  # omit_defaults drops a None rank


def test_unknown_event_types_are_skipped() -> None:
    batch = parse_batch(msgpack.packb([0.0, [{"type": "SomethingNew", "x": 1}]]))
    assert batch.events == ()


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\xc1", "not msgpack"),
        (msgpack.packb({"ts": 0}), "array"),
        (msgpack.packb([0.0, [["BlockStored", [1]]]]), "array-encoded"),
        (msgpack.packb([0.0, [{"type": "BlockStored"}]]), "malformed"),
        (msgpack.packb([0.0, [{**VLLM_STORED, "block_hashes": ["x"]}]]), "int or bytes"),
    ],
)
def test_bad_payloads_raise_wire_errors(payload: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        parse_batch(payload)


def test_sequence_frames() -> None:
    assert encode_seq(258) == b"\x00" * 6 + b"\x01\x02"
    assert decode_seq(encode_seq(2**63)) == 2**63
    assert decode_seq(END_SEQ) == -1
    with pytest.raises(WireError, match="8 bytes"):
        decode_seq(b"\x01")
