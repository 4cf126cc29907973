"""PD settings of a simulated replica (engines/sim/pd.py): transfer time from the
architecture, the pool a role simulates, and the PD metric names per flavour."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from controlplane.catalog import pd_metrics as pm
from controlplane.engines.sim.pd import PdStats, pd_config, render_pd
from controlplane.engines.sim.server import pd_pool
from controlplane.spec import EngineKind, load_topology

REPO = Path(__file__).resolve().parents[4]
AIR = REPO / "topologies" / "glm45-air-fp8-h200x1.yaml"
AIR_PD = REPO / "topologies" / "glm45-air-fp8-pd.yaml"


def test_transfer_time_is_prompt_kv_bytes_over_the_link() -> None:
    topo = load_topology(AIR)
    arch = topo.arch
    cfg = pd_config(topo, "prefill", EngineKind.SGLANG, 400.0, 300.0, 1.0)
    # GQA: K and V of every KV head per layer (plus the MTP layer: both sides draft), FP8 KV
    # cache (1 byte per value); TP 1 sends over one link.
    layers = arch.num_layers + (arch.num_nextn_layers if topo.speculative else 0)
    assert cfg.kv_bytes_per_token == layers * 2 * arch.num_kv_heads * arch.head_dim
    assert cfg.links == 1
    seconds = cfg.transfer_seconds(8192)
    assert seconds == cfg.kv_bytes_per_token * 8192 * 8 / 400e9
    slower = pd_config(topo, "prefill", EngineKind.SGLANG, 100.0, 300.0, 1.0)
    assert slower.transfer_seconds(8192) == 4 * seconds


def test_a_pd_topology_role_simulates_its_pool() -> None:
    topo = load_topology(AIR_PD)
    prefill, gbps = pd_pool(topo, "prefill")
    decode, _ = pd_pool(topo, "decode")
    assert prefill.name.endswith("-prefill") and decode.name.endswith("-decode")
    assert gbps == topo.spec.disaggregation.network.gbps  # type: ignore[union-attr]
    colocated = load_topology(AIR)
    assert pd_pool(colocated, "decode") == (colocated, None)


def test_pd_metrics_carry_each_engines_names() -> None:
    stats = PdStats(bootstrap_queue=2, transfer_queue=1, failed_transfers=3)
    stats.latency.observe(12.0)
    for flavor, names in ((EngineKind.SGLANG, pm.SGLANG_0_5_23_PD),
                          (EngineKind.VLLM, pm.VLLM_0_32_NIXL)):  # fmt: skip
        text = "\n".join(render_pd(flavor, stats, "glm", "prefill")) + "\n"
        samples = {
            s.name: s for f in text_string_to_metric_families(text) for s in f.samples
        }  # fmt: skip
        (failed,) = (n for n in names.transfer_failures if n != names.failed_bootstraps)
        assert samples[failed].value == 3
        assert samples[f"{names.transfer_latency.name}_count"].value == 1
        if flavor is EngineKind.SGLANG:
            waiting = names.queue("prefill_bootstrap")
            assert samples[waiting].value == 2
            assert samples[names.queue("decode_transfer")].value == 1
            assert samples[waiting].labels["engine_type"] == "prefill"
        else:  # vLLM exports no PD queue gauges
            assert not any("queue" in name for name in samples)
