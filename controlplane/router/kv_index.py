"""Which endpoint holds which KV block, learned from the engines' own events (pure).

One `KvIndex` per router process covers every endpoint of a deployment. It applies
decoded event batches per endpoint (`apply`), forgets an endpoint's blocks wholesale
(`clear`: AllBlocksCleared, a new engine id, an endpoint removed), and answers the one
question a policy asks: for a prompt's chain of block hashes, how many blocks from the
start does each endpoint hold (`runs`). Hashes are chained (block i's hash covers blocks
0..i), so the run stops at the first missing block, as the engine's own lookup does.
Not thread-safe: one event loop owns it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

from controlplane.router.kv_wire import AllBlocksCleared, BlockRemoved, BlockStored, EventBatch

EVICTED_KEPT = 1 << 17  # recently evicted blocks remembered (a few MB)


class KvIndex:
    """Block hash -> endpoints holding it, and endpoint -> its blocks."""

    def __init__(self, medium: str | None = "GPU") -> None:
        """`medium`: only events for this tier count (None: every tier, e.g. SGLang,
        which sends no medium). Blocks offloaded to CPU are not a GPU prefix hit."""
        self._medium = medium
        self._holders: dict[int, set[str]] = {}
        self._blocks: dict[str, set[int]] = {}
        # Block -> endpoints that announced evicting it and have not stored it again, the
        # most recent `EVICTED_KEPT` blocks: what the approximate index cannot know.
        self._evicted: OrderedDict[int, set[str]] = OrderedDict()
        # Endpoint -> the block size its last BlockStored said (the engine's own page size).
        self.block_sizes: dict[str, int] = {}

    def __len__(self) -> int:
        """Distinct block hashes held by at least one endpoint."""
        return len(self._holders)

    def blocks_of(self, endpoint: str) -> int:
        return len(self._blocks.get(endpoint, ()))

    def sizes(self) -> Mapping[str, int]:
        """Blocks held per endpoint (for the index-size gauge)."""
        return {endpoint: len(blocks) for endpoint, blocks in self._blocks.items()}

    def holds(self, endpoint: str, block: int) -> bool:
        return block in self._blocks.get(endpoint, ())

    def apply(self, endpoint: str, batch: EventBatch) -> None:
        """Apply one batch's events in order."""
        for event in batch.events:
            if isinstance(event, AllBlocksCleared):
                self.clear(endpoint)
            elif not self._counts(event.medium):
                continue
            elif isinstance(event, BlockStored):
                self.block_sizes[endpoint] = event.block_size
                self.add(endpoint, event.block_hashes)
            elif isinstance(event, BlockRemoved):
                self.remove(endpoint, event.block_hashes)

    def _counts(self, medium: str | None) -> bool:
        return self._medium is None or medium is None or medium == self._medium

    def add(self, endpoint: str, blocks: Iterable[int]) -> None:
        own = self._blocks.setdefault(endpoint, set())
        evicted = self._evicted
        for block in blocks:
            own.add(block)
            self._holders.setdefault(block, set()).add(endpoint)
            gone = evicted.get(block)
            if gone is not None:
                gone.discard(endpoint)

    def remove(self, endpoint: str, blocks: Iterable[int]) -> None:
        own = self._blocks.get(endpoint)
        if not own:
            return
        blocks = [block for block in blocks if block in own]
        own.difference_update(blocks)
        self._unhold(endpoint, blocks)
        evicted = self._evicted
        for block in blocks:
            evicted.setdefault(block, set()).add(endpoint)
            evicted.move_to_end(block)
        while len(evicted) > EVICTED_KEPT:
            evicted.popitem(last=False)

    def evicted(self, block: int) -> frozenset[str]:
        """Endpoints that evicted `block` (BlockRemoved) and have not stored it since."""
        return frozenset(self._evicted.get(block, ()))

    def clear(self, endpoint: str) -> None:
        """Forget every block of `endpoint` (idempotent)."""
        self._unhold(endpoint, self._blocks.pop(endpoint, set()))
        self.block_sizes.pop(endpoint, None)

    def _unhold(self, endpoint: str, blocks: Iterable[int]) -> None:
        for block in blocks:
            holders = self._holders.get(block)
            if holders is not None:
                holders.discard(endpoint)
                if not holders:
                    del self._holders[block]

    def runs(self, chain: Sequence[int]) -> dict[str, int]:
        """Per endpoint holding the first block: how many leading blocks of `chain` it holds.

        Endpoints absent from the answer hold none. Cost: one set lookup per block per
        endpoint still matching, stopping at the deepest match."""
        if not chain:
            return {}
        alive = set(self._holders.get(chain[0], ()))
        runs = dict.fromkeys(alive, 1)
        for depth, block in enumerate(chain[1:], start=2):
            holders = self._holders.get(block)
            alive = alive & holders if holders else set()
            if not alive:
                break
            for endpoint in alive:
                runs[endpoint] = depth
        return runs
