"""PD capacity: both pools by the engines' rules, the PD additions, the KV transfer."""

from __future__ import annotations

import pytest

from controlplane.capacity import capacity_report
from controlplane.capacity.pd_capacity import pd_capacity, transfer_figures
from tests.unit.spec.pd_helpers import AIR_PD, H200_PD, pools_of, shipped, with_pools

FP8_BYTES = 1  # the examples keep KV in FP8 (auto with FP8 weights)


@pytest.mark.parametrize("path", [AIR_PD, H200_PD], ids=lambda p: p.stem)
def test_each_pool_is_sized_by_the_colocated_rules(path: object) -> None:
    pools = shipped(path)  # type: ignore[arg-type]
    report = pd_capacity(pools)
    assert [p.role for p in report.pools] == ["prefill", "decode"]
    for pool, topo in zip(report.pools, (pools.prefill, pools.decode), strict=True):
        assert pool.report == capacity_report(topo)
    assert report.fits and report.verdict.startswith("Fits")


@pytest.mark.parametrize("prompt", [1, 8192, 32768])
def test_transfer_bytes_and_time_from_the_architecture(prompt: int) -> None:
    pools = shipped(AIR_PD)
    arch = pools.prefill.arch
    # K and V, per KV head, head_dim values, every layer plus the MTP layer (both pools draft).
    layers = arch.num_layers + arch.num_nextn_layers
    per_token = layers * 2 * arch.num_kv_heads * arch.head_dim * FP8_BYTES
    figures = transfer_figures(pools, prompt)
    assert figures.kv_bytes_per_token == per_token
    assert figures.bytes_per_request == per_token * prompt
    links = min(pools.prefill.tp, pools.decode.tp, arch.num_kv_heads)
    link_bytes_per_s = pools.spec.network.gbps * 1e9 / 8
    assert figures.seconds_per_request == pytest.approx(
        per_token * prompt / (links * link_bytes_per_s)
    )


def test_without_mtp_the_draft_layer_is_not_sent_and_tcp_is_slower() -> None:
    base = transfer_figures(shipped(AIR_PD), 4096)
    text = with_pools(AIR_PD, {}, {}, speculative={"algorithm": "none"})
    no_draft = transfer_figures(pools_of(text), 4096)
    arch = shipped(AIR_PD).prefill.arch
    assert (
        no_draft.kv_bytes_per_token * (arch.num_layers + 1)
        == base.kv_bytes_per_token * arch.num_layers
    )
    import yaml

    data = yaml.safe_load(text)
    data["disaggregation"]["network"] = {"transport": "tcp"}
    data["disaggregation"]["transfer"] = {}
    tcp = transfer_figures(pools_of(yaml.safe_dump(data)), 4096)
    assert tcp.backend == "mooncake_tcp" and tcp.link_gbps < no_draft.link_gbps
    assert tcp.seconds_per_request > no_draft.seconds_per_request


def test_sglang_decode_reserves_tokens_and_prealloc_slots() -> None:
    pools = shipped(AIR_PD)
    decode = pd_capacity(pools).pools[1]
    seqs = pools.decode.spec.max_num_seqs
    assert decode.reserved_decode_tokens == 512  # sglang disagg.py default
    # pd_disaggregation_hook.py: 2 x the per-worker batch when it is 32 or fewer.
    assert decode.prealloc_slots == (2 * seqs if seqs <= 32 else 0)
    assert decode.prealloc_slot_bytes == decode.prealloc_slots * pools.decode.context_length * 4
    assert decode.kv_tokens_with_prealloc == (
        decode.report.kv_tokens_required + 512 + decode.prealloc_slots * pools.decode.context_length
    )
    prefill = pd_capacity(pools).pools[0]
    assert prefill.reserved_decode_tokens == prefill.prealloc_slots == 0


def test_vllm_pools_have_no_sglang_reserves() -> None:
    report = pd_capacity(pools_of(with_pools(AIR_PD, {}, {}, engine="vllm")))
    assert all(p.reserved_decode_tokens == 0 and p.prealloc_slots == 0 for p in report.pools)
    assert report.transfer.backend == "NixlConnector"


def test_a_refused_pair_does_not_fit() -> None:
    report = pd_capacity(pools_of(with_pools(AIR_PD, {"context_length": 8192}, {})))
    assert (
        not report.fits and report.verdict.startswith("Refused") and "pd-context" in report.verdict
    )
