"""The KV event index (router/kv_index.py): learning, forgetting, longest runs."""

from __future__ import annotations

from controlplane.router.kv_index import KvIndex
from controlplane.router.kv_wire import AllBlocksCleared, BlockRemoved, BlockStored, EventBatch


def stored(*hashes: int, medium: str | None = "GPU") -> BlockStored:
    return BlockStored(hashes, None, (), 16, medium)


def batch(*events: BlockStored | BlockRemoved | AllBlocksCleared) -> EventBatch:
    return EventBatch(0.0, events)


def test_runs_count_leading_blocks_and_stop_at_the_first_hole() -> None:
    index = KvIndex()
    index.apply("a", batch(stored(1, 2, 3, 4)))
    index.apply("b", batch(stored(1, 2), stored(4)))  # b lacks block 3
    assert index.runs([1, 2, 3, 4, 5]) == {"a": 4, "b": 2}
    assert index.runs([9, 1, 2]) == {}  # nothing without the first block
    assert index.runs([]) == {}
    assert len(index) == 4 and index.sizes() == {"a": 4, "b": 3}


def test_removed_blocks_shorten_runs_and_leave_the_index() -> None:
    index = KvIndex()
    index.apply("a", batch(stored(1, 2, 3)))
    index.apply("b", batch(stored(1, 2, 3)))
    index.apply("a", batch(BlockRemoved((2,))))
    assert index.runs([1, 2, 3]) == {"a": 1, "b": 3}
    index.apply("b", batch(BlockRemoved((1, 2, 3))))
    assert index.runs([1, 2, 3]) == {"a": 1}
    assert len(index) == 2  # blocks 1 and 3, both still on a


def test_all_blocks_cleared_forgets_one_endpoint_only() -> None:
    index = KvIndex()
    index.apply("a", batch(stored(1, 2)))
    index.apply("b", batch(stored(1)))
    index.apply("a", batch(AllBlocksCleared(), stored(7)))  # events apply in order
    assert index.runs([1, 2]) == {"b": 1}
    assert index.holds("a", 7) and not index.holds("a", 1)


def test_other_tiers_do_not_count_as_gpu_hits() -> None:
    index = KvIndex()
    index.apply("a", batch(stored(1, medium="CPU"), stored(2, medium=None)))
    assert not index.holds("a", 1) and index.holds("a", 2)  # SGLang sends no medium
    every_tier = KvIndex(medium=None)
    every_tier.apply("a", batch(stored(1, medium="CPU")))
    assert every_tier.holds("a", 1)


def test_clear_and_remove_are_idempotent() -> None:
    index = KvIndex()
    index.clear("nobody")
    index.remove("nobody", [1])
    index.apply("a", batch(stored(1)))
    index.clear("a")
    index.clear("a")
    assert len(index) == 0 and index.blocks_of("a") == 0


def test_evictions_are_remembered_until_the_block_is_stored_again() -> None:
    from controlplane.router import kv_index

    index = KvIndex()
    index.apply("a", EventBatch(0.0, (BlockStored((1, 2), None, (), 16),)))
    index.apply("b", EventBatch(0.0, (BlockStored((1,), None, (), 16),)))
    assert index.evicted(1) == frozenset()
    index.apply("a", EventBatch(0.0, (BlockRemoved((1,)),)))
    index.apply("b", EventBatch(0.0, (BlockRemoved((1, 99)),)))  # 99: never held, ignored
    assert index.evicted(1) == {"a", "b"} and index.evicted(99) == frozenset()
    index.apply("a", EventBatch(0.0, (BlockStored((1,), None, (), 16),)))
    assert index.evicted(1) == {"b"}
    index.add("c", range(1000, 1000 + kv_index.EVICTED_KEPT + 5))
    index.remove("c", range(1000, 1000 + kv_index.EVICTED_KEPT + 5))
    assert index.evicted(1) == frozenset()  # bounded: the oldest evictions are forgotten
    assert index.evicted(1004 + kv_index.EVICTED_KEPT) == {"c"}
