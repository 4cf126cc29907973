"""vLLM's block hashes computed outside the engine (router/kv_hash.py).

The CBOR bytes are built here from RFC 8949 by hand (major type << 5 | argument), so
these checks do not reuse the encoder under test; the engines tier checks the same
hashes against vLLM 0.32's own `hash_block_tokens` (tests/engines/test_kv_events_vllm.py).
"""

from __future__ import annotations

import hashlib

import pytest

from controlplane.router import kv_hash


def test_none_hash_is_sha256_of_the_cbor_text_seed() -> None:
    seed = b"vllm-none-hash"
    expected = hashlib.sha256(bytes([0x60 + len(seed)]) + seed).digest()  # text, len < 24
    assert kv_hash.none_hash() == expected


def test_first_block_hashes_parent_tokens_and_null_extra_keys() -> None:
    tokens = [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 7, 7, 7, 7, 7, 7, 7]
    body = bytes([0x80 | 16])  # array of 16: length in the head (below 24)
    body += bytes([0x00, 0x17, 0x18, 24, 0x18, 255, 0x19, 1, 0, 0x19, 255, 255])
    body += bytes([0x1A, 0, 1, 0, 0, 0x1A, 255, 255, 255, 255])
    body += bytes([0x1B, 0, 0, 0, 1, 0, 0, 0, 0]) + bytes([0x07] * 7)
    parent = kv_hash.none_hash()
    cbor = bytes([0x83, 0x58, 32]) + parent + body + bytes([0xF6])
    assert kv_hash.block_digests(tokens) == [hashlib.sha256(cbor).digest()]


def test_blocks_chain_and_partial_blocks_are_not_hashed() -> None:
    tokens = list(range(40))
    digests = kv_hash.block_digests(tokens, block_size=16)
    assert len(digests) == 2  # 40 tokens: two full blocks, 8 left over
    second_alone = kv_hash.block_digests(tokens[16:32], block_size=16)[0]
    assert digests[1] != second_alone  # block 2's hash depends on block 1


def test_equal_prefixes_give_equal_leading_keys() -> None:
    a = kv_hash.block_keys(list(range(64)) + [1] * 16)
    b = kv_hash.block_keys(list(range(64)) + [2] * 16)
    assert a[:4] == b[:4] and a[4] != b[4]


def test_event_keys_are_the_low_64_bits() -> None:
    digest = kv_hash.block_digests(list(range(16)))[0]
    assert kv_hash.block_keys(list(range(16))) == [int.from_bytes(digest[-8:], "big")]


def test_seed_changes_every_hash() -> None:
    tokens = list(range(32))
    assert set(kv_hash.block_keys(tokens)).isdisjoint(kv_hash.block_keys(tokens, seed="42"))


def test_negative_tokens_and_bad_block_size_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        kv_hash.block_digests([-1] * 16)
    with pytest.raises(ValueError, match="block_size"):
        kv_hash.block_digests([1] * 16, block_size=0)


def test_chain_cache_gives_block_keys_for_shared_prefixes_and_stays_bounded() -> None:
    cache = kv_hash.ChainCache(block_size=16, max_blocks=40)
    shared = list(range(320))  # 20 blocks
    for tail in ([1] * 40, [2] * 40, [1] * 40):  # same prefix, different and repeated tails
        prompt = shared + tail
        assert cache.keys(prompt) == kv_hash.block_keys(prompt)
    assert len(cache) == 24  # 20 shared blocks + 2 + 2 tails, nothing twice
    for n in range(3):  # unrelated prompts fill it: it empties rather than grows
        prompt = [1000 + n] * 400
        assert cache.keys(prompt) == kv_hash.block_keys(prompt)
        assert len(cache) <= 40
    seeded = kv_hash.ChainCache(seed="other")
    assert seeded.keys(shared) == kv_hash.block_keys(shared, seed="other")
    with pytest.raises(ValueError):
        kv_hash.ChainCache(block_size=0)
