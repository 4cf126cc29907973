"""Run inside the vLLM venv: vLLM's own KV-event structs and block hashing, as JSON.

stdin: a JSON list of checks, each {"id", "kind", ...}:
- kind "decode": {"payload_hex"}: decode with vLLM's msgspec `KVEventBatch` and describe it;
- kind "encode": {"batch"}: build vLLM's `KVEventBatch` from plain fields, return its bytes;
- kind "hash": {"tokens", "block_size"}: vLLM's chained sha256_cbor event hashes.
stdout: one `GLMCTL-CHECK {json}` line per check.
"""

import json
import sys

import msgspec
from vllm.distributed import kv_events as ke
from vllm.utils.hashing import sha256_cbor
from vllm.v1.core import kv_cache_utils as kcu

PREFIX = "GLMCTL-CHECK "


def describe(event):
    fields = {name: getattr(event, name) for name in event.__struct_fields__}
    return {"type": type(event).__name__, **fields}


def check(item):
    kind = item["kind"]
    if kind == "decode":
        batch = msgspec.msgpack.decode(bytes.fromhex(item["payload_hex"]), type=ke.KVEventBatch)
        events = [describe(e) for e in batch.events]
        return {"ts": batch.ts, "rank": batch.data_parallel_rank, "events": events}
    if kind == "encode":
        spec = item["batch"]
        events = []
        for raw in spec["events"]:
            cls = getattr(ke, raw.pop("type"))
            events.append(cls(**raw))
        batch = ke.KVEventBatch(ts=spec["ts"], events=events, data_parallel_rank=spec["rank"])
        return {"payload_hex": msgspec.msgpack.encode(batch).hex()}
    kcu.init_none_hash(sha256_cbor)
    size, tokens, parent, keys = item["block_size"], item["tokens"], None, []
    for start in range(0, len(tokens) - size + 1, size):
        parent = kcu.hash_block_tokens(sha256_cbor, parent, tokens[start : start + size])
        keys.append(kcu.maybe_convert_block_hash(parent))
    return {"keys": keys}


for item in json.load(sys.stdin):
    print(PREFIX + json.dumps({"id": item["id"], **check(item)}), flush=True)
