"""glmctl's KV-event wire format and block hashes against vLLM 0.32's own code.

vLLM's msgspec structs decode what the simulator publishes (router/kv_wire.encode_batch is
its encoder), glmctl parses what vLLM's encoder writes, and the router's hashes equal
vLLM's `hash_block_tokens` chain with sha256_cbor (tests/engines/checkers/vllm_kv_events.py).
"""

from __future__ import annotations

import random

import pytest

from controlplane.engines.venv import EngineVenv
from controlplane.router import kv_hash
from controlplane.router.kv_wire import (
    AllBlocksCleared,
    BlockRemoved,
    BlockStored,
    EventBatch,
    encode_batch,
    parse_batch,
)
from tests.engines.conftest import run_checker

pytestmark = [pytest.mark.engines, pytest.mark.slow]


def test_wire_format_and_hashes_match_vllm(vllm_venv: EngineVenv) -> None:
    rng = random.Random(27)
    tokens = [rng.randrange(151_000) for _ in range(16 * 5 + 7)]  # GLM-4.5's vocabulary
    keys = kv_hash.block_keys(tokens)
    ours = EventBatch(
        12.5,
        (AllBlocksCleared(), BlockStored(tuple(keys[:2]), None, tuple(tokens[:32]), 16),
         BlockStored(tuple(keys[2:]), keys[1], tuple(tokens[32:80]), 16),
         BlockRemoved((keys[4],))),
        0,
    )  # fmt: skip
    vllm_side = {
        "ts": 3.0,
        "rank": 1,
        "events": [
            {"type": "BlockStored", "block_hashes": keys[:1], "parent_block_hash": None,
             "token_ids": tokens[:16], "block_size": 16, "lora_id": None, "medium": "GPU",
             "lora_name": None, "group_idx": 0},
            {"type": "BlockRemoved", "block_hashes": keys[:1], "medium": "GPU"},
            {"type": "AllBlocksCleared"},
        ],
    }  # fmt: skip
    results = run_checker(
        vllm_venv,
        "vllm_kv_events.py",
        [
            {"id": "decode", "kind": "decode", "payload_hex": encode_batch(ours).hex()},
            {"id": "encode", "kind": "encode", "batch": vllm_side},
            {"id": "hash", "kind": "hash", "tokens": tokens, "block_size": 16},
        ],
    )
    assert results["hash"]["keys"] == keys
    decoded = results["decode"]
    assert (decoded["ts"], decoded["rank"]) == (12.5, 0)
    types = [e["type"] for e in decoded["events"]]
    assert types == ["AllBlocksCleared", "BlockStored", "BlockStored", "BlockRemoved"]
    second = decoded["events"][2]
    assert second["block_hashes"] == keys[2:] and second["parent_block_hash"] == keys[1]
    assert second["token_ids"] == tokens[32:80] and second["medium"] == "GPU"
    parsed = parse_batch(bytes.fromhex(results["encode"]["payload_hex"]))
    assert parsed.ts == 3.0 and parsed.data_parallel_rank == 1
    assert parsed.events == (
        BlockStored((keys[0],), None, tuple(tokens[:16]), 16),
        BlockRemoved((keys[0],)),
        AllBlocksCleared(),
    )
