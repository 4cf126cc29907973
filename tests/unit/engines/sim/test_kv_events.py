"""The simulator's KV events: pool hooks, BlockStored runs, `--kv-events-config` parsing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import msgpack
import pytest

from controlplane.engines.sim.kv import KvPool
from controlplane.engines.sim.kv_events import KvEventPublisher, KvEventsConfig, parse_config
from controlplane.engines.sim.tokenizer import WORDS, text_rules
from controlplane.errors import UserError
from controlplane.local.tiny_writer import write_tokenizer
from controlplane.router import kv_hash
from controlplane.router.kv_wire import BlockStored, parse_batch


class Recorder:
    def __init__(self) -> None:
        self.stored_log: list[list[int]] = []
        self.removed_log: list[list[int]] = []

    def stored(self, hashes: Sequence[int]) -> None:
        self.stored_log.append(list(hashes))

    def removed(self, hashes: Sequence[int]) -> None:
        self.removed_log.append(list(hashes))


def test_pool_reports_new_blocks_and_evictions_only() -> None:
    pool = KvPool(total_blocks=4)
    seen = Recorder()
    pool.listener = seen
    assert pool.allocate([1, 2], 3) == 0
    pool.release([1, 2], 3)  # 1 and 2 stay cached
    assert pool.allocate([1, 2, 5], 3) == 2  # 1, 2 are hits: only 5 is new
    pool.release([1, 2, 5], 3)
    pool.allocate([7, 8, 9], 4)  # needs every block: the cached ones are evicted
    assert seen.stored_log == [[1, 2], [5], [7, 8, 9]]
    assert sorted(h for batch in seen.removed_log for h in batch) == [1, 2, 5]


def test_parse_config_takes_vllms_json_and_names_bad_keys() -> None:
    config = parse_config('{"enable_kv_cache_events": true, "endpoint": "tcp://*:6000"}')
    assert config.enabled and config.buffer_steps == 10_000 and config.publisher is None
    assert not parse_config('{"enable_kv_cache_events": true, "publisher": "null"}').enabled
    with pytest.raises(UserError, match="unknown keys \\['endpiont'\\]"):
        parse_config('{"endpiont": "tcp://*:1"}')
    with pytest.raises(UserError, match="not JSON"):
        parse_config("{")
    with pytest.raises(UserError, match="publisher"):
        parse_config('{"publisher": "kafka"}')


async def test_stored_events_carry_parent_tokens_and_split_at_holes() -> None:
    config = KvEventsConfig(enable_kv_cache_events=True, endpoint="inproc://kv-unit")
    publisher = KvEventPublisher(config, lambda words: [int(w) for w in words], 16)
    try:
        words = [str(i) for i in range(48)]
        keys = publisher.block_hashes(words)
        assert keys == kv_hash.block_keys(list(range(48)))
        publisher.stored([keys[0], keys[2]])  # block 1 already cached: two runs
        publisher.flush()
        payload = publisher._buffer[-1][1]
        first, second = parse_batch(payload).events[-2:]
        assert first == BlockStored((keys[0],), None, tuple(range(16)), 16)
        assert second == BlockStored((keys[2],), keys[1], tuple(range(32, 48)), 16)
        assert msgpack.unpackb(payload)[1][0] == {"type": "AllBlocksCleared"}  # start state
        await asyncio.sleep(0)
    finally:
        await publisher.stop()


def test_token_ids_are_the_tokenizers_own(tmp_path: Path) -> None:
    """With `simulation.tokenizer`, the ids hashed are what `tokenizers` encodes the prompt to
    (so a router tokenizing with the model's tokenizer computes the same block hashes)."""
    tokenizers = pytest.importorskip("tokenizers")
    write_tokenizer(tmp_path, 1024)
    path = tmp_path / "tokenizer.json"
    rules = text_rules(str(path))
    text = "[gMASK]<sop><|user|> the model serves tokens, from a cache of keys!<|assistant|>"
    expected = tokenizers.Tokenizer.from_file(str(path)).encode(text, add_special_tokens=False)
    assert rules.token_ids(rules.prompt_tokens(text)) == expected.ids
    a, b, again = WORDS.token_ids(["alpha", "beta", "alpha"])
    assert a == again != b  # stable per word


async def test_a_publisher_hashes_with_its_scheme() -> None:
    config = KvEventsConfig(enable_kv_cache_events=True, endpoint="inproc://kv-scheme")
    sglang = kv_hash.SGLANG_SHA256
    publisher = KvEventPublisher(config, lambda words: [int(w) for w in words], 16, sglang)
    try:
        keys = publisher.block_hashes([str(i) for i in range(40)])
        assert keys == kv_hash.block_keys(list(range(40)), scheme=sglang)
    finally:
        await publisher.stop()
    with pytest.raises(ValueError, match="unknown hash scheme"):
        KvEventPublisher(config, lambda words: [], 16, "md5")
