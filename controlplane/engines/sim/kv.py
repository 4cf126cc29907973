"""KV-cache pool of the simulated engine: fixed-size blocks plus a prefix cache.

A block is either in use (by one or more running sequences), cached (its sequence
finished; kept for prefix hits and evicted least-recently-used first) or free. Prompt
blocks are identified by chained hashes, so a block matches only when every block before
it matches too, as in vLLM's prefix caching and SGLang's radix cache. Cached blocks live
in the spare KV: they are evicted as soon as a new sequence needs the room.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol


class KvListener(Protocol):
    """Told when blocks enter the cache and when they are evicted (KV events)."""

    def stored(self, hashes: Sequence[int]) -> None: ...

    def removed(self, hashes: Sequence[int]) -> None: ...


class KvPool:
    """Block accounting for admission, usage and prefix hits (not thread-safe: one loop)."""

    def __init__(self, total_blocks: int) -> None:
        if total_blocks < 1:
            raise ValueError("a KV pool needs at least one block")
        self.total_blocks = total_blocks
        self.used_blocks = 0
        self._refs: dict[int, int] = {}
        self._cached: OrderedDict[int, None] = OrderedDict()
        self.listener: KvListener | None = None

    @property
    def free_blocks(self) -> int:
        return self.total_blocks - self.used_blocks - len(self._cached)

    @property
    def cached_blocks(self) -> int:
        return len(self._cached)

    @property
    def usage(self) -> float:
        """Fraction of blocks held by running sequences (cached blocks count as free)."""
        return self.used_blocks / self.total_blocks

    def match(self, hashes: Sequence[int]) -> int:
        """How many leading blocks of `hashes` are already in the pool."""
        hits = 0
        for h in hashes:
            if h not in self._refs and h not in self._cached:
                break
            hits += 1
        return hits

    def allocate(self, hashes: Sequence[int], blocks_needed: int) -> int | None:
        """Reserve `blocks_needed` blocks whose first ones are the prompt blocks `hashes`.

        Returns the number of prefix-hit blocks, or None (and changes nothing) when the
        pool cannot hold the sequence even after evicting every unreferenced cached block.
        """
        hits = self.match(hashes)
        shared = [h for h in hashes if h in self._refs or h in self._cached]
        reclaimed = sum(1 for h in shared if h in self._cached)
        fresh = blocks_needed - len(shared)
        if fresh > self.free_blocks + len(self._cached) - reclaimed:
            return None
        if self.listener is not None:
            refs, cached = self._refs, self._cached
            self.listener.stored([h for h in hashes if h not in refs and h not in cached])
        for h in hashes:
            if h in self._refs:
                self._refs[h] += 1
            else:
                self._cached.pop(h, None)
                self._refs[h] = 1
                self.used_blocks += 1
        self.used_blocks += blocks_needed - len(hashes)
        evicted = []
        while self.free_blocks < 0:
            evicted.append(self._cached.popitem(last=False)[0])
        if evicted and self.listener is not None:
            self.listener.removed(evicted)
        return hits

    def release(self, hashes: Sequence[int], blocks_held: int) -> None:
        """Return a finished sequence's blocks; its prompt blocks stay cached (most recent)."""
        dropped = 0
        for h in hashes:
            count = self._refs[h] - 1
            if count:
                self._refs[h] = count
            else:
                del self._refs[h]
                self._cached[h] = None
                dropped += 1
        self.used_blocks -= blocks_held - len(hashes) + dropped
