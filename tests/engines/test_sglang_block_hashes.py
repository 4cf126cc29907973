"""The router's SGLang block hashes (router/kv_hash.py `sglang_sha256`) against SGLang
0.5.23's own code, run in the cached SGLang venv (tests/engines/checkers/sglang_kv_events.py):

- the default TreeCore (the bundled Rust extension) publishes, for prompts inserted into
  one radix tree, exactly the keys `kv_hash.block_keys` computes: shared prefixes are not
  stored twice, a new branch's first block names the shared block as parent, and a
  partial last page is never published;
- the Python TreeCore's event recorder (`KVCacheEventRecorder`, hashing with the C++
  `get_hash_str`) gives the same keys, node boundaries wherever they fall on pages;
- glmctl's wire parser reads SGLang's own `KVEventBatch` bytes, its signed int64 hashes
  becoming the index's unsigned keys.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from controlplane.engines.venv import EngineVenv
from controlplane.router import kv_hash
from controlplane.router.kv_wire import BlockStored, block_key, parse_batch
from tests.engines.conftest import run_checker

pytestmark = [pytest.mark.engines, pytest.mark.slow]

SCHEME = kv_hash.SGLANG_SHA256
PAGE = 16
rng = random.Random(523)


def tokens(n: int) -> list[int]:
    return [rng.randrange(151_552) for _ in range(n)]  # GLM-4.5's vocabulary


SHARED = tokens(3 * PAGE)
FIRST = SHARED + tokens(2 * PAGE + 7)  # 5 full pages, 7 tokens never published
BRANCH = SHARED + tokens(PAGE + 3)  # shares 3 pages, then 1 page of its own
SHORT = tokens(9)  # page size 1: every token is a block
WIDE = [2**33, *tokens(7)]  # an id above 32 bits: that page is hashed as uint64s


def keys(token_ids: list[int], page: int = PAGE) -> list[int]:
    return kv_hash.block_keys(token_ids, page, scheme=SCHEME)


def published(events: list[dict[str, Any]]) -> tuple[list[int], list[int | None]]:
    """The keys of a run of BlockStored events and each block's parent, as indexed."""
    hashes, parents = [], []
    for event in events:
        parent = event["parent_block_hash"]
        for raw in event["block_hashes"]:
            hashes.append(block_key(raw))
            parents.append(None if parent is None else block_key(parent))
            parent = raw
    return hashes, parents


def checked(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    result = results[name]
    assert "unavailable" not in result, result
    return result


@pytest.fixture(scope="module")
def results(sglang_venv: EngineVenv) -> dict[str, dict[str, Any]]:
    first, branch = keys(FIRST), keys(BRANCH)
    wire_events = [
        {"block_hashes": [_signed(k) for k in first[:2]], "parent_block_hash": None,
         "token_ids": FIRST[: 2 * PAGE], "block_size": PAGE},
        {"block_hashes": [_signed(branch[3])], "parent_block_hash": _signed(branch[2]),
         "token_ids": BRANCH[3 * PAGE : 4 * PAGE], "block_size": PAGE},
    ]  # fmt: skip
    split = [FIRST[:PAGE], FIRST[PAGE : 3 * PAGE], FIRST[3 * PAGE : 5 * PAGE]]
    branch_path = [split[0], split[1], BRANCH[3 * PAGE : 4 * PAGE]]
    return run_checker(
        sglang_venv,
        "sglang_kv_events.py",
        [
            {"id": "rust", "kind": "rust", "page_size": PAGE, "inserts": [FIRST, BRANCH]},
            {"id": "rust1", "kind": "rust", "page_size": 1, "inserts": [SHORT]},
            {"id": "wide", "kind": "rust", "page_size": 4, "inserts": [WIDE]},
            {"id": "python", "kind": "python", "page_size": PAGE, "paths": [split, branch_path]},
            {"id": "wire", "kind": "wire", "events": wire_events},
        ],
    )


def _signed(key: int) -> int:
    """SGLang's `hash_str_to_int64` form of an index key (signed int64)."""
    return key - (1 << 64) if key >= 1 << 63 else key


def test_the_rust_tree_core_publishes_the_routers_keys(results: dict[str, Any]) -> None:
    first_events, branch_events = checked(results, "rust")["inserts"]
    first, branch = keys(FIRST), keys(BRANCH)
    assert len(first) == 5 and published(first_events) == (first, [None, *first[:-1]])
    assert branch[:3] == first[:3]  # the shared prefix: stored once, by the first insert
    assert published(branch_events) == (branch[3:], [branch[2]])
    stored_tokens = [t for e in first_events for t in e["token_ids"]]
    assert stored_tokens == FIRST[: 5 * PAGE]  # the partial page is not published


def test_page_size_one_and_wide_ids(results: dict[str, Any]) -> None:
    (events,) = checked(results, "rust1")["inserts"]
    assert published(events)[0] == keys(SHORT, page=1)
    (events,) = checked(results, "wide")["inserts"]
    assert published(events)[0] == keys(WIDE, page=4)


def test_the_python_recorder_publishes_the_routers_keys(results: dict[str, Any]) -> None:
    if "unavailable" in results["python"]:  # the C++ hash needs a compiler and OpenSSL
        pytest.skip(results["python"]["unavailable"])
    first_events, branch_events = results["python"]["paths"]
    first, branch = keys(FIRST), keys(BRANCH)
    assert published(first_events) == (first, [None, *first[:-1]])
    assert published(branch_events) == (branch[3:], [branch[2]])


def test_sglang_event_batches_parse_to_the_routers_keys(results: dict[str, Any]) -> None:
    batch = parse_batch(bytes.fromhex(checked(results, "wire")["payload_hex"]))
    first, branch = keys(FIRST), keys(BRANCH)
    assert batch.data_parallel_rank == 0
    assert batch.events == (
        BlockStored(tuple(first[:2]), None, tuple(FIRST[: 2 * PAGE]), PAGE),
        BlockStored((branch[3],), branch[2], tuple(BRANCH[3 * PAGE : 4 * PAGE]), PAGE),
    )
