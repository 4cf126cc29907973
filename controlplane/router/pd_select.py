"""Prefill/decode pair selection and request rewriting for the PD route (pure).

A model is served disaggregated when its registry entries include `pd: "prefill"` and
`pd: "decode"` endpoints (router/registry.py). The prefill endpoint is chosen by prefix
affinity and load (router/policies.py `prefix_affinity`: the prompt's KV is computed
there, so a cached prefix saves prefill); the decode endpoint by decode load: requests it
holds plus its KV usage weighted as `balance_abs` requests (a full KV pool counts as that
many queued requests), ties rotating with the sequence number.

Request bodies, per engine (checked against the engines' own routers):
- SGLang 0.5.23 (python/sglang/srt/disaggregation/mini_lb.py `generate`): the same body to
  P and D with `bootstrap_host` (P's host), `bootstrap_port` (P's bootstrap port) and
  `bootstrap_room` (random in 0..2^63-1).
- vLLM 0.32.0 (tests/v1/kv_connector/nixl_integration/toy_proxy_server.py): P gets
  `kv_transfer_params` {do_remote_decode: true, do_remote_prefill: false, remote_*: null},
  `stream: false`, `max_tokens: 1` (and `max_completion_tokens: 1` when present), no
  `stream_options`; D gets the original body with P's returned `kv_transfer_params` (none
  with ExampleConnector, whose D finds the prompt's KV in the shared folder itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from controlplane.router.policies import EndpointView, RouteContext, Tuning, prefix_affinity
from controlplane.router.registry import EndpointInfo

PREFILL, DECODE = "prefill", "decode"
ROOM_BITS = 63  # SGLang: random.randint(0, 2**63 - 1)


@dataclass(frozen=True, slots=True)
class PdPair:
    prefill: EndpointView
    decode: EndpointView
    prefill_reason: str  # prefix_affinity's reason (prefix_hit, prefix_miss, ...)
    decode_reason: str


def is_pd(infos: Iterable[EndpointInfo]) -> bool:
    """Whether these endpoints (one model's) form a PD deployment: both roles present."""
    roles = {info.pd for info in infos}
    return PREFILL in roles and DECODE in roles


def choose_pair(
    prefill: Sequence[EndpointView],
    decode: Sequence[EndpointView],
    ctx: RouteContext,
) -> PdPair:
    """P by prefix affinity and load among `prefill`, D by decode load among `decode`
    (both non-empty). `ctx` carries the prefix lookup, sequence number and tuning; its
    candidates are ignored."""
    p_ctx = RouteContext(
        tuple(prefill), ctx.sequence, ctx.draws, ctx.prefix_endpoint, ctx.prefix_depth,
        ctx.prefix_blocks, None, ctx.tuning,
    )  # fmt: skip
    p = prefix_affinity(p_ctx)
    d = least_decode_load(decode, ctx.sequence, ctx.tuning)
    return PdPair(p.endpoint, d, p.reason, "decode_load")


def decode_score(view: EndpointView, tuning: Tuning) -> float:
    """Lower is better: requests held plus KV usage in units of `balance_abs` requests."""
    return view.load + view.kv_usage * max(tuning.balance_abs, 1)


def least_decode_load(
    decode: Sequence[EndpointView], sequence: int, tuning: Tuning
) -> EndpointView:
    count = len(decode)
    best = min(
        range(count), key=lambda i: (decode_score(decode[i], tuning), (i - sequence) % count)
    )
    return decode[best]


def bootstrap_address(info: EndpointInfo) -> tuple[str, int]:
    """SGLang's (bootstrap_host, bootstrap_port) of a prefill endpoint: its URL's host and
    its registered bootstrap port (the URL's port when none is registered)."""
    parts = urlsplit(info.url)
    host = parts.hostname or "127.0.0.1"
    return host, info.bootstrap_port or parts.port or 80


def sglang_body(data: dict[str, Any], host: str, port: int, room: int) -> bytes:
    """The body SGLang's PD router sends to both P and D."""
    return orjson.dumps(
        {**data, "bootstrap_host": host, "bootstrap_port": port, "bootstrap_room": room}
    )


def vllm_prefill_body(data: dict[str, Any]) -> bytes:
    """The body vLLM's PD proxy sends to P (prefill only, one token, not streamed)."""
    body = {k: v for k, v in data.items() if k != "stream_options"}
    body["kv_transfer_params"] = {
        "do_remote_decode": True,
        "do_remote_prefill": False,
        "remote_engine_id": None,
        "remote_block_ids": None,
        "remote_host": None,
        "remote_port": None,
    }
    body["stream"] = False
    body["max_tokens"] = 1
    if "max_completion_tokens" in body:
        body["max_completion_tokens"] = 1
    return orjson.dumps(body)


def vllm_decode_body(data: dict[str, Any], params: dict[str, Any] | None) -> bytes:
    """The body vLLM's PD proxy sends to D: the request plus P's `kv_transfer_params`;
    without them (None: P's connector returns none, as ExampleConnector) the request as is."""
    return orjson.dumps(data if params is None else {**data, "kv_transfer_params": params})


def transfer_params(prefill_answer: bytes) -> dict[str, Any] | None:
    """P's returned `kv_transfer_params`, or None when its answer holds none."""
    try:
        parsed = orjson.loads(prefill_answer)
    except orjson.JSONDecodeError:
        return None
    params = parsed.get("kv_transfer_params") if isinstance(parsed, dict) else None
    return params if isinstance(params, dict) else None


def sse_error(first_chunk: bytes) -> str | None:
    """The message of an SSE `error` event opening a stream (how SGLang and vLLM report a
    failed KV transfer once the response started), else None."""
    head = first_chunk.lstrip()
    if not head.startswith(b"data:"):
        return None
    line = head[5:].split(b"\n", 1)[0].strip()
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    error = event.get("error") if isinstance(event, dict) else None
    if not isinstance(error, dict):
        return None
    return str(error.get("message") or "engine error")
