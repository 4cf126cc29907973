"""Drain per PD pool: a leaving replica waits for a peer of its own pool and for its own
requests in KV transfer (SGLang's PD queue gauges, read from a real HTTP /metrics)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controlplane.autoscale.drain import has_peer
from controlplane.autoscale.pd_drain import drained, engine_idle, in_transfer, transfer_queues

LABELS = 'model_name="glm",engine_type="prefill",tp_rank="{rank}",pp_rank="0",moe_ep_rank="0"'


def sglang_prefill_metrics(bootstrap: int, inflight: int, ranks: int = 2) -> str:
    """What an SGLang 0.5.23 prefill engine prints: one sample per rank of each PD gauge."""
    lines = ["# TYPE sglang:num_prefill_bootstrap_queue_reqs gauge"]
    for rank in range(ranks):
        labels = LABELS.format(rank=rank)
        lines.append(f"sglang:num_prefill_bootstrap_queue_reqs{{{labels}}} {bootstrap}.0")
        lines.append(f"sglang:num_prefill_inflight_queue_reqs{{{labels}}} {inflight}.0")
        lines.append(f"sglang:num_running_reqs{{{labels}}} 0.0")
    return "\n".join(lines) + "\n"


def test_each_pool_waits_on_its_own_queues() -> None:
    assert transfer_queues("sglang", "prefill") == (
        "sglang:num_prefill_bootstrap_queue_reqs",
        "sglang:num_prefill_inflight_queue_reqs",
    )
    assert transfer_queues("sglang", "decode") == (
        "sglang:num_decode_prealloc_queue_reqs",
        "sglang:num_decode_transfer_queue_reqs",
    )
    assert transfer_queues("sglang", "") == ()  # colocated: nothing in transfer
    assert transfer_queues("vllm", "prefill") == ()  # NIXL: covered by the router's count


def test_in_transfer_sums_every_rank() -> None:
    names = transfer_queues("sglang", "prefill")
    assert in_transfer(sglang_prefill_metrics(1, 2, ranks=2), names) == 6
    assert in_transfer(sglang_prefill_metrics(0, 0), names) == 0


def test_drained_needs_router_engine_and_transfers_all_quiet() -> None:
    assert drained(0, False, 0)
    assert not drained(1, False, 0)
    assert not drained(0, True, 0)
    assert not drained(0, False, 1)  # the router is done, a room still transfers


def test_peer_must_be_of_the_same_pool() -> None:
    def ep(pd: str) -> str:
        return json.dumps({"model": "m"} | ({"pd": pd} if pd else {}))

    endpoints = {"p0": ep("prefill"), "d0": ep("decode"), "d1": ep("decode"), "c0": ep("")}
    assert not has_peer(endpoints, {}, set(), "p0")  # decodes are no peers of a prefill
    assert has_peer(endpoints, {}, set(), "d0")
    assert not has_peer(endpoints, {}, {"d1"}, "d0")
    assert not has_peer(endpoints, {}, set(), "c0")  # colocated: PD replicas do not count


class _Metrics(BaseHTTPRequestHandler):
    body = ""

    def do_GET(self) -> None:
        data = type(self).body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def engine() -> Iterator[tuple[str, type[_Metrics]]]:
    handler = type("Handler", (_Metrics,), {"body": sglang_prefill_metrics(0, 1)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", handler
    finally:
        server.shutdown()
        server.server_close()


def test_prefill_replica_stays_until_its_rooms_are_sent(engine) -> None:  # type: ignore[no-untyped-def]
    url, handler = engine
    idle = engine_idle(url, "sglang", "prefill")
    assert not idle()  # one room still in the inflight (transfer) queue
    handler.body = sglang_prefill_metrics(0, 0)
    assert idle()


def test_gone_engine_and_colocated_replica_are_idle() -> None:
    assert engine_idle("http://127.0.0.1:1/metrics", "sglang", "decode")()
    assert engine_idle("http://127.0.0.1:1/metrics", "sglang", "")()
