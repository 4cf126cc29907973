"""A simulated PD pair speaks its engine's protocol: what the engines answer when the
decode side cannot get the prefill's KV, or a PD request lacks its fields."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from controlplane.engines.sim import SimServer
from controlplane.local.ports import free_port
from controlplane.spec import Topology

pytestmark = pytest.mark.integration


def _body(model: str, stream: bool, **extra: object) -> dict[str, object]:
    messages = [{"role": "user", "content": "hello " * 50}]
    return {"model": model, "messages": messages, "max_tokens": 5, "stream": stream, **extra}


@pytest.mark.parametrize("flavor", ["sglang", "vllm"])
def test_decode_fails_like_the_engine_when_prefill_is_unreachable(
    fp8_topology: Topology, flavor: str
) -> None:
    """SGLang aborts with 500 (disaggregation/decode.py prepare_abort), vLLM finishes the
    request with reason "error" (kv_load_failure_policy fail): a 500 JSON error, or a 200
    stream whose first event is the error, then [DONE]."""
    topo = fp8_topology
    dead = free_port()  # nothing listens there
    if flavor == "sglang":
        fields: dict[str, object] = {"bootstrap_host": "127.0.0.1", "bootstrap_port": dead,
                                     "bootstrap_room": 7}  # fmt: skip
        message = "Decode handshake failed"
    else:
        params = {"do_remote_prefill": True, "remote_host": "127.0.0.1", "remote_port": dead,
                  "remote_request_id": "r1"}  # fmt: skip
        fields = {"kv_transfer_params": params}
        message = "Internal server error"
    with SimServer.start(topo, flavor=flavor, pd_role="decode", pd_timeout=5.0) as decode:
        url = decode.url + "/v1/chat/completions"
        full = httpx.post(url, json=_body(topo.served_model_name, False, **fields), timeout=30)
        assert full.status_code == 500
        assert message in full.json()["message"]
        streamed = httpx.post(url, json=_body(topo.served_model_name, True, **fields), timeout=30)
        assert streamed.status_code == 200
        first, done = [line for line in streamed.text.split("\n\n") if line]
        assert '"error"' in first and message in first and '"code":500' in first
        assert done == "data: [DONE]"
        failed = ("sglang:num_bootstrap_failed_reqs_total" if flavor == "sglang"
                  else "vllm:nixl_num_failed_transfers_total")  # fmt: skip
        metrics = httpx.get(decode.url + "/metrics", timeout=5).text
        assert any(line.startswith(failed) and line.endswith(" 2.0")
                   for line in metrics.splitlines())  # fmt: skip


def test_sglang_prefill_needs_a_bootstrap_room(fp8_topology: Topology) -> None:
    topo = fp8_topology
    with SimServer.start(topo, flavor="sglang", pd_role="prefill") as prefill:
        reply = httpx.post(prefill.url + "/v1/chat/completions",
                           json=_body(topo.served_model_name, False), timeout=30)  # fmt: skip
        assert reply.status_code == 400
        assert "bootstrap_room" in reply.json()["message"]


def test_sglang_prefill_times_out_without_its_decode(fp8_topology: Topology) -> None:
    """P waits for the decode side to pull the KV (SGLang's bootstrap timeout), then fails."""
    topo = fp8_topology
    with SimServer.start(topo, flavor="sglang", pd_role="prefill", pd_timeout=0.5) as prefill:
        body = _body(topo.served_model_name, False, bootstrap_host="127.0.0.1",
                     bootstrap_port=prefill.port, bootstrap_room=11)  # fmt: skip
        reply = httpx.post(prefill.url + "/v1/chat/completions", json=body, timeout=30)
        assert reply.status_code == 500
        assert "KVPoll.Bootstrapping" in reply.json()["message"]


def test_vllm_prefill_without_kv_params_serves_colocated(fp8_topology: Topology) -> None:
    """vLLM's NixlConnector engine is kv_both: a plain request is served whole."""
    topo = fp8_topology
    with SimServer.start(topo, flavor="vllm", pd_role="prefill") as prefill:
        reply = httpx.post(prefill.url + "/v1/chat/completions",
                           json=_body(topo.served_model_name, False), timeout=30)  # fmt: skip
        assert reply.status_code == 200
        assert "kv_transfer_params" not in reply.json()
        assert reply.json()["usage"]["completion_tokens"] > 1


def _gauge(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def test_sglang_prefill_holds_the_kv_until_the_decode_side_has_it(
    fp8_topology: Topology,
) -> None:
    """P answers only after the transfer (SGLang's inflight queue), and its KV stays in use
    until then: a decode side pulling `/sim/pd/kv` frees it."""
    topo = fp8_topology
    with SimServer.start(topo, flavor="sglang", pd_role="prefill", time_scale=50.0) as prefill:
        body = _body(topo.served_model_name, False, bootstrap_host="127.0.0.1",
                     bootstrap_port=prefill.port, bootstrap_room=99)  # fmt: skip
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(
                httpx.post, prefill.url + "/v1/chat/completions", json=body, timeout=30
            )
            deadline = time.monotonic() + 10
            while _gauge(prefill.url, "sglang:num_prefill_bootstrap_queue_reqs") < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            while _gauge(prefill.url, "sglang:num_running_reqs") > 0:  # prefilled, held
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert _gauge(prefill.url, "sglang:token_usage") > 0
            assert not answer.done()
            pulled = httpx.get(prefill.url + "/sim/pd/kv?key=99", timeout=10).text
            assert pulled.startswith("ready ") and pulled.endswith("done\n")
            assert answer.result().status_code == 200
        assert _gauge(prefill.url, "sglang:token_usage") == 0
        assert _gauge(prefill.url, "sglang:num_prefill_bootstrap_queue_reqs") == 0
        assert _gauge(prefill.url, "sglang:kv_transfer_latency_ms_count") == 1
