"""Engines' block hashes computed outside the engine (router/kv_hash.py): vLLM's and SGLang's.

The CBOR bytes are built here from RFC 8949 by hand (major type << 5 | argument), so
these checks do not reuse the encoder under test; the engines tier checks the same
hashes against vLLM 0.32's own `hash_block_tokens` (tests/engines/test_kv_events_vllm.py).
SGLang's pages are packed here with `struct`; the engines tier checks them against SGLang
0.5.23's own caches (tests/engines/test_sglang_block_hashes.py).
"""

from __future__ import annotations

import hashlib
import struct

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


# SGLang 0.5.23 (`sglang_sha256`): sha256 over the prior digest and the page's uint32s.
SGLANG = kv_hash.SGLANG_SHA256


def test_sglang_pages_chain_sha256_over_little_endian_uint32() -> None:
    tokens = list(range(8))
    first = hashlib.sha256(struct.pack("<4I", 0, 1, 2, 3)).digest()  # no prior digest
    second = hashlib.sha256(first + struct.pack("<4I", 4, 5, 6, 7)).digest()
    assert kv_hash.block_digests(tokens, 4, scheme=SGLANG) == [first, second]
    # The hex digests SGLang 0.5.23's `get_hash_str(list(range(8)), None, page_size=4)`
    # returned in its venv (and its Rust TreeCore's `get_hash_str`).
    assert first.hex().startswith("baed642339816aff")
    assert second.hex().startswith("01414b052706d93b")


def test_sglang_keys_are_the_first_eight_bytes_unsigned() -> None:
    digest = kv_hash.block_digests(list(range(4)), 4, scheme=SGLANG)[0]
    key = kv_hash.block_keys(list(range(4)), 4, scheme=SGLANG)[0]
    assert key == int.from_bytes(digest[:8], "big")
    # SGLang sends `hash_str_to_int64` (signed); the index keys it unsigned (kv_wire).
    assert key - (1 << 64) == -4977211910723114241


def test_sglang_partial_pages_are_not_hashed_and_prefixes_agree() -> None:
    tokens = list(range(100))
    keys = kv_hash.block_keys(tokens, 16, scheme=SGLANG)
    assert len(keys) == 6
    assert kv_hash.block_keys(tokens[:96], 16, scheme=SGLANG) == keys
    assert kv_hash.block_keys(tokens[:40], 16, scheme=SGLANG) == keys[:2]
    assert kv_hash.block_keys(tokens[:15], 16, scheme=SGLANG) == []


def test_sglang_chain_depends_on_every_earlier_page() -> None:
    a = kv_hash.block_keys([1] * 16 + [9] * 16, 16, scheme=SGLANG)
    b = kv_hash.block_keys([2] * 16 + [9] * 16, 16, scheme=SGLANG)
    assert a[1] != b[1]  # same second page, other parent
    assert set(a).isdisjoint(kv_hash.block_keys([1] * 16 + [9] * 16))  # not vLLM's keys


def test_sglang_seed_is_ignored_and_wide_ids_are_tagged() -> None:
    tokens = list(range(32))
    assert kv_hash.block_keys(tokens, scheme=SGLANG, seed="42") == kv_hash.block_keys(
        tokens, scheme=SGLANG
    )
    wide = [2**33, 1, 2, 3]
    expected = hashlib.sha256(b"\xff" + struct.pack("<4Q", *wide)).digest()
    assert kv_hash.block_digests(wide, 4, scheme=SGLANG) == [expected]
    with pytest.raises(ValueError, match="token ids"):
        kv_hash.block_digests([-1] * 4, 4, scheme=SGLANG)


def test_schemes_are_named_and_the_cache_follows_its_scheme() -> None:
    with pytest.raises(ValueError, match="unknown hash scheme 'sha1'"):
        kv_hash.block_keys([1] * 16, scheme="sha1")
    cache = kv_hash.ChainCache(block_size=16, scheme=SGLANG)
    prompt = list(range(70))
    assert cache.keys(prompt) == kv_hash.block_keys(prompt, scheme=SGLANG)
    assert cache.keys(prompt[:48] + [5] * 16) == kv_hash.block_keys(
        prompt[:48] + [5] * 16, scheme=SGLANG
    )
