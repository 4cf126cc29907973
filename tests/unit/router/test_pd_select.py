"""PD pair selection and request rewriting (router/pd_select.py): pure functions."""

from __future__ import annotations

import orjson

from controlplane.router.pd_select import (
    bootstrap_address,
    choose_pair,
    is_pd,
    sglang_body,
    sse_error,
    transfer_params,
    vllm_decode_body,
    vllm_prefill_body,
)
from controlplane.router.policies import EndpointView, RouteContext, Tuning
from controlplane.router.registry import EndpointInfo


def view(endpoint_id: str, inflight: int = 0, kv: float = 0.0) -> EndpointView:
    return EndpointView(endpoint_id, f"http://10.0.0.1:{9000 + len(endpoint_id)}", "m",
                        inflight=inflight, kv_usage=kv)  # fmt: skip


def ctx(prefix: str | None = None, depth: int = 0, blocks: int = 0, seq: int = 0) -> RouteContext:
    return RouteContext((view("x"),), seq, prefix_endpoint=prefix, prefix_depth=depth,
                        prefix_blocks=blocks)  # fmt: skip


def test_is_pd_needs_both_roles() -> None:
    p = EndpointInfo("p", "http://a:1", "m", pd="prefill")
    d = EndpointInfo("d", "http://b:1", "m", pd="decode")
    c = EndpointInfo("c", "http://c:1", "m")
    assert is_pd([p, d]) and is_pd([p, d, c])
    assert not is_pd([p]) and not is_pd([d, c]) and not is_pd([c])


def test_prefill_by_prefix_then_load_and_decode_by_load() -> None:
    prefill = [view("p0", inflight=3), view("p1", inflight=0)]
    decode = [view("d0", inflight=2), view("d1", inflight=1)]
    hit = choose_pair(prefill, decode, ctx("p0", depth=8, blocks=10))
    assert (hit.prefill.endpoint_id, hit.prefill_reason) == ("p0", "prefix_hit")
    assert hit.decode.endpoint_id == "d1"
    miss = choose_pair(prefill, decode, ctx())
    assert (miss.prefill.endpoint_id, miss.prefill_reason) == ("p1", "prefix_miss")
    busy = [view("p0", inflight=40), view("p1", inflight=0)]
    assert choose_pair(busy, decode, ctx("p0", 8, 10)).prefill_reason == "prefix_overloaded"


def test_decode_kv_usage_weighs_as_requests() -> None:
    tuning = Tuning()  # balance_abs 8: a full KV pool counts as 8 requests
    decode = [view("d0", inflight=1, kv=0.9), view("d1", inflight=4, kv=0.1)]
    pair = choose_pair([view("p")], decode, ctx())
    assert pair.decode.endpoint_id == "d1"  # 1 + 7.2 > 4 + 0.8
    assert tuning.balance_abs == 8


def test_decode_ties_rotate_with_sequence() -> None:
    decode = [view("d0"), view("d1")]
    chosen = {choose_pair([view("p")], decode, ctx(seq=s)).decode.endpoint_id for s in range(4)}
    assert chosen == {"d0", "d1"}


def test_bootstrap_address_prefers_registered_port() -> None:
    info = EndpointInfo("p", "http://10.1.2.3:30000", "m", pd="prefill", bootstrap_port=8998)
    assert bootstrap_address(info) == ("10.1.2.3", 8998)
    assert bootstrap_address(EndpointInfo("p", "http://h:30000", "m")) == ("h", 30000)


def test_sglang_body_adds_bootstrap_fields_only() -> None:
    data = {"model": "m", "messages": [], "stream": True, "tools": [{"x": 1}]}
    body = orjson.loads(sglang_body(data, "10.0.0.1", 8998, 2**63 - 1))
    assert body == {**data, "bootstrap_host": "10.0.0.1", "bootstrap_port": 8998,
                    "bootstrap_room": 2**63 - 1}  # fmt: skip


def test_vllm_bodies_follow_the_toy_proxy() -> None:
    data = {"model": "m", "messages": [], "stream": True, "max_tokens": 50,
            "max_completion_tokens": 50, "stream_options": {"include_usage": True}}  # fmt: skip
    p = orjson.loads(vllm_prefill_body(data))
    assert p["stream"] is False and p["max_tokens"] == 1 and p["max_completion_tokens"] == 1
    assert "stream_options" not in p
    assert p["kv_transfer_params"]["do_remote_decode"] is True
    assert p["kv_transfer_params"]["do_remote_prefill"] is False
    params = {"do_remote_prefill": True, "remote_request_id": "r", "remote_port": 5600}
    d = orjson.loads(vllm_decode_body(data, params))
    assert d == {**data, "kv_transfer_params": params}
    # ExampleConnector's P returns no params: D gets the request as the client sent it.
    assert orjson.loads(vllm_decode_body(data, None)) == data
    assert transfer_params(b'{"id": "x", "kv_transfer_params": null}') is None


def test_transfer_params_and_sse_error_parsing() -> None:
    assert transfer_params(b'{"kv_transfer_params": {"a": 1}}') == {"a": 1}
    assert transfer_params(b'{"id": "x"}') is None and transfer_params(b"not json") is None
    event = b'data: {"error": {"message": "KVTransferError(bootstrap_room=1): dead"}}\n\n'
    assert sse_error(event) == "KVTransferError(bootstrap_room=1): dead"
    assert sse_error(b'data: {"choices": []}\n\n') is None
    assert sse_error(b"data: [DONE]\n\n") is None
