"""Run inside the SGLang venv: the block hashes SGLang 0.5.23's own code publishes, as JSON.

No GPU and no model: the caches are driven directly (the venv is a parser-only install
without transformers, so `UnifiedRadixCache` itself cannot be imported).
stdin: a JSON list of checks, each {"id", "kind", ...}:
- kind "rust": {"inserts", "page_size"}: the default TreeCore (the bundled Rust extension,
  `srt/mem_cache/rust_tree_core`, `SGLANG_UNIFIED_RADIX_TREE_CORE_BACKEND=rust`): insert
  each token list into one tree with KV events on; the BlockStored events of each insert;
- kind "python": {"paths", "page_size"}: the Python TreeCore's recorder
  (`srt/mem_cache/events.py` `KVCacheEventRecorder.record_store`, hashing with
  `srt/mem_cache/utils.py` `get_hash_str`, the C++ extension torch builds on first use):
  each path is a list of page-aligned segments, one radix node each, shared prefixes
  being the same nodes; the BlockStored events of each newly stored node;
- kind "wire": {"events"}: SGLang's msgspec `KVEventBatch` with those BlockStored events,
  encoded as its ZMQ publisher sends it.
stdout: one `GLMCTL-CHECK {json}` line per check; {"unavailable": why} when the code
that check runs cannot load here.
"""

from __future__ import annotations

import json
import sys
import traceback
from array import array
from typing import Any

PREFIX = "GLMCTL-CHECK "


def stored(events: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "block_hashes": list(e.block_hashes),
            "parent_block_hash": e.parent_block_hash,
            "token_ids": list(e.token_ids),
            "block_size": e.block_size,
        }
        for e in events
        if type(e).__name__ == "BlockStored"
    ]


def rust(item: dict[str, Any]) -> dict[str, Any]:
    import torch
    from sglang.srt.disaggregation.kv_events import BlockStored, namespaced_block_hash
    from sglang.srt.mem_cache.rust_tree_core.extension import bindings as b

    # adapter.py `RustUnifiedTreeCore.__init__` / `begin_insert`, with the defaults of a
    # plain full-attention cache (component 0: FULL) on the CPU.
    init = b.TreeCoreInitParamsBinding(
        eviction_policy="lru", slru_protected_threshold=2, tlru_tail_budget=0,
        tlru_float_config=None, page_size=item["page_size"], is_write_back=False,
        enable_hicache=False, write_through_threshold=256, device="cpu",
        swa_sliding_window_size=None, swa_req_ring=False, enable_kv_cache_events=True,
        dynamo_kv_event_format=False, mamba_cache_chunk_size=None,
        mamba_max_states_per_path=None,
    )  # fmt: skip
    core = b.RustUnifiedTreeCoreBinding(init, [0])
    answers = []
    for tokens in item["inserts"]:
        params = b.InsertParamsBinding(
            key=array("q", tokens), value=torch.arange(len(tokens), dtype=torch.int64),
            extra_key=None, cache_salt=None, session_id=None, mamba_value=None,
            prev_prefix_len=0, swa_evicted_seqlen=0, swa_branching_seqlen=None,
            inserted_len=0, priority=0, track_adopted_ranges=False, rotation_base=None,
        )  # fmt: skip
        step = core.begin_insert(params)
        while step.result is None:
            step = core.resume_insert()
        core.end_insert()
        events = []
        for tagged in core.take_events():  # adapter.py `_kv_event_from_tagged`, no LoRA
            if tagged[0] == "block_stored":
                hashes = [namespaced_block_hash(h, namespace_seed=None) for h in tagged[1]]
                events.append(BlockStored(hashes, tagged[2], tagged[3], tagged[4], None))
        answers.append(stored(events))
    return {"inserts": answers}


class Key:
    """The RadixKey fields the recorder and `get_hash_str` read (no LoRA, no salt)."""

    def __init__(self, token_ids: list[int]) -> None:
        self.token_ids = token_ids
        self.extra_key = None
        self.cache_salt = None
        self.is_bigram = False

    def __len__(self) -> int:
        return len(self.token_ids)


class Node:
    def __init__(self, tokens: list[int], parent: Node | None) -> None:
        self.key = Key(tokens)
        self.parent = parent
        self.hash_value: list[str] | None = [] if parent is None else None
        self.event_hash_value = None


def python(item: dict[str, Any]) -> dict[str, Any]:
    from sglang.srt.mem_cache.events import KVCacheEventRecorder
    from sglang.srt.mem_cache.utils import get_hash_str

    try:
        get_hash_str([1], None, page_size=1)  # builds or loads the C++ hash extension
    except Exception as exc:  # no compiler or OpenSSL headers: say so, do not fail
        return {"unavailable": f"{type(exc).__name__}: {exc} ({exc.__cause__!r})"}
    recorder = KVCacheEventRecorder(enabled=True, page_size=item["page_size"])
    root = Node([], None)
    nodes: dict[tuple[tuple[int, ...], ...], Node] = {}
    answers = []
    for path in item["paths"]:
        parent, events = root, []
        for depth in range(len(path)):
            prefix = tuple(tuple(segment) for segment in path[: depth + 1])
            node = nodes.get(prefix)
            if node is None:
                node = nodes[prefix] = Node(path[depth], parent)
                recorder.record_store(node)
                events += recorder.take()
            parent = node
        answers.append(stored(events))
    return {"paths": answers}


def wire(item: dict[str, Any]) -> dict[str, Any]:
    import msgspec
    from sglang.srt.disaggregation.kv_events import BlockStored, KVEventBatch

    events = [BlockStored(lora_id=None, medium="GPU", **e) for e in item["events"]]
    batch = KVEventBatch(ts=1.5, events=events, attn_dp_rank=0)
    return {"payload_hex": msgspec.msgpack.encode(batch).hex()}


def check(item: dict[str, Any]) -> dict[str, Any]:
    kind = item["kind"]
    try:
        return {"rust": rust, "python": python, "wire": wire}[kind](item)
    except ImportError as exc:
        return {"unavailable": f"{kind}: {exc}", "traceback": traceback.format_exc()}


for request in json.load(sys.stdin):
    print(PREFIX + json.dumps({"id": request["id"], **check(request)}), flush=True)
