"""The capacity report: per-rank rows, verdicts, suggestions, serialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.capacity import CapacityReport, capacity_report
from controlplane.capacity.layout import layout_of
from controlplane.capacity.memory import replica_memory
from controlplane.spec import load_topology
from tests.unit.capacity.conftest import make_topology

TOPOLOGIES = sorted((Path(__file__).resolve().parents[3] / "topologies").glob("*.yaml"))


@pytest.mark.parametrize("path", TOPOLOGIES, ids=[p.stem for p in TOPOLOGIES])
def test_every_shipped_topology_fits(path: Path) -> None:
    report = capacity_report(load_topology(path))
    assert report.fits, report.explain()
    assert 0 < report.engine_mem_fraction < 1
    assert report.host_ram_per_node_bytes > 0


def test_report_fields_are_consistent_and_serialise() -> None:
    report = capacity_report(make_topology())
    assert isinstance(report, CapacityReport)
    data = json.loads(report.model_dump_json())
    assert data["fits"] is True and data["engine_mem_fraction_flag"] == "--mem-fraction-static"
    assert CapacityReport.model_validate(data) == report
    (rank,) = report.ranks
    assert rank.ranks == "0-3" and rank.layers == "0-91+mtp"
    assert rank.weights_bytes == sum(rank.weights_by_class.values())
    assert rank.headroom_bytes == rank.kv_pool_bytes - rank.kv_required_bytes
    assert report.kv_token_capacity >= report.kv_tokens_required == 8 * 32768
    assert report.max_concurrency == report.kv_token_capacity // 32768
    assert report.max_context_at_batch == min(131072, report.kv_token_capacity // 8)
    assert report.decode_tokens_per_s > 0 and report.assumptions


def test_pipeline_report_has_one_row_per_stage() -> None:
    report = capacity_report(make_topology(count=8, parallelism={"tensor": 4, "pipeline": 2}))
    assert [r.ranks for r in report.ranks] == ["0-3", "4-7"]
    assert report.ranks[0].layers == "0-45" and report.ranks[1].layers == "46-91+mtp"
    assert report.kv_token_capacity == min(r.kv_tokens for r in report.ranks)


def test_not_fitting_says_by_how_much_and_what_would_fit() -> None:
    report = capacity_report(make_topology(precision="bf16", gpu="H100", count=8, context=131072))
    assert not report.fits and report.shortfall_bytes > 0
    assert "Does not fit" in report.verdict and "short per GPU" in report.verdict
    changes = {s.change for s in report.suggestions}
    assert {"more GPUs", "FP8 weights and KV cache"} <= changes
    more = next(s for s in report.suggestions if s.change == "more GPUs")
    assert more.gpus > 8 and more.headroom_bytes >= 0
    assert "Layouts that fit" in report.explain()


def test_kv_bound_layout_suggests_shorter_context_and_fewer_sequences() -> None:
    report = capacity_report(make_topology(model="glm-4.5-air", gpu="H200", count=1, context=65536))
    assert not report.fits
    changes = [s.change for s in report.suggestions]
    assert any(c.startswith("context ") for c in changes)
    assert any(c.startswith("max_num_seqs ") for c in changes)
    for s in report.suggestions:
        assert s.headroom_bytes >= 0


def test_explicit_mem_fraction_failure_is_an_error_finding() -> None:
    report = capacity_report(
        make_topology(
            model="glm-4.5-air",
            precision="bf16",
            count=2,
            context=8192,
            engine={"mem_fraction": 0.7},
        )
    )
    assert (
        not report.fits
        and report.engine_mem_fraction == 0.7
        and not report.engine_mem_fraction_auto
    )
    assert "mem-fraction-too-small" in {f.code for f in report.findings}


def test_kv_capacity_matches_memory_model() -> None:
    topo = make_topology(count=8, context=131072)
    memory = replica_memory(layout_of(topo))
    assert capacity_report(topo).kv_token_capacity == memory.kv_tokens


def test_custom_device_memory() -> None:
    topo = make_topology(
        model="glm-edge-4b",
        precision="int4",
        gpu="V100-16G",
        count=1,
        context=640,
        batch=1,
        engine={"kind": "sim", "mem_fraction": 0.9},  # int4 launches on no real engine
    )
    assert capacity_report(topo, gpu_memory_bytes=4 * 10**9).fits
    assert not capacity_report(topo, gpu_memory_bytes=3 * 10**9).fits
