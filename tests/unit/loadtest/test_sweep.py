"""Sweep: candidate layouts from the capacity search, the ramp, ranking and its explanation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from controlplane.capacity.layout import layout_of
from controlplane.capacity.search import search
from controlplane.loadtest.sweep import (
    LayoutResult,
    StepResult,
    candidates,
    explain,
    model_facts,
    ramp,
    rank,
)
from controlplane.loadtest.sweep_report import topology_yaml, write_sweep
from controlplane.spec import parse_spec, resolve
from controlplane.spec.models import SloSpec, TopologySpec

BASE = {"model": "glm-4.5", "precision": "fp8", "context_length": 32768}
SLO = SloSpec(ttft_p99=2.0, itl_p99=0.05)


@pytest.fixture(scope="module")
def layouts() -> list:  # type: ignore[type-arg]
    topo = resolve(TopologySpec.model_validate({**BASE, "gpus": {"type": "H200", "count": 8}}))
    found = search(layout_of(topo), (4, 8))
    return candidates(BASE, found, limit=4, mtp_options=(True, False), batches=(8,))


def test_candidates_spread_over_gpu_counts_with_mtp_on_and_off(layouts: list) -> None:  # type: ignore[type-arg]
    assert len(layouts) == 8
    assert {lay.gpus for lay in layouts} == {4, 8}
    assert sorted(lay.mtp for lay in layouts) == [False] * 4 + [True] * 4
    for lay in layouts:  # every candidate is a valid topology the simulator can run
        topo = resolve(TopologySpec.model_validate(lay.spec))
        assert topo.spec.gpus.count == lay.gpus
        assert (topo.speculative is not None) == lay.mtp
        assert lay.kv_sequences >= lay.batch and lay.headroom_gib > 0


def test_mtp_raises_tokens_per_user_and_the_ramp_follows_capacity(layouts: list) -> None:  # type: ignore[type-arg]
    on, off = layouts[0], layouts[1]
    assert on.mtp and not off.mtp and on.spec["parallelism"] == off.spec["parallelism"]
    facts_on = model_facts(resolve(TopologySpec.model_validate(on.spec)), 2200, 190)
    facts_off = model_facts(resolve(TopologySpec.model_validate(off.spec)), 2200, 190)
    assert facts_on.tokens_per_step > 1.0 == facts_off.tokens_per_step
    assert facts_on.tokens_per_s_per_user > facts_off.tokens_per_s_per_user
    rates = ramp(facts_on)
    assert rates == sorted(rates) and rates[-1] > facts_on.capacity_rps > rates[0]


def _step(rate: float, ttft: float, itl: float, tokens: int = 3000, ok: int = 10) -> StepResult:
    return StepResult(rate, 10, ok, 30.0, tokens, ttft, itl, 0.02)


def test_rank_by_goodput_per_gpu_and_explain(layouts: list, tmp_path: Path) -> None:  # type: ignore[type-arg]
    facts = model_facts(resolve(TopologySpec.model_validate(layouts[0].spec)), 2200, 190)
    small = LayoutResult(layouts[0], facts, [_step(1, 0.1, 0.02), _step(2, 0.3, 0.09)], SLO)
    big = LayoutResult(layouts[1], facts, [_step(1, 0.1, 0.02, tokens=6000)], SLO)
    none = LayoutResult(layouts[2], facts, [_step(1, 5.0, 0.02)], SLO)
    ranked = rank([none, small, big])
    assert [r.layout for r in ranked][-1] == layouts[2] and none.goodput_per_gpu == 0
    assert small.best is not None and small.best.rate == 1
    assert "ITL p99 90 ms > 50 ms" in small.limit
    assert math.isclose(small.goodput_per_gpu, 100 / layouts[0].gpus)
    lines = explain(ranked)
    assert ranked[0].layout.label in lines[0] and "Runner-up" in lines[-1]
    files = write_sweep(ranked, tmp_path, top=5, meta={"workload": "chat"})
    names = {f.name for f in files}
    assert {"sweep.json", "sweep.csv", "pareto.png", "sweep-1.yaml", "sweep-2.yaml"} <= names
    assert "sweep-3.yaml" not in names  # a layout that never met the SLO is not suggested
    spec = parse_spec((tmp_path / "sweep-1.yaml").read_text(), origin="sweep-1.yaml")
    assert resolve(spec).spec.gpus.count == ranked[0].layout.gpus
    assert yaml.safe_load(topology_yaml(ranked[0], 1))["name"].startswith("sweep-1-")


def test_a_failed_availability_fails_the_step() -> None:
    assert _step(1, 0.1, 0.02, ok=9).problems(SLO) == ["9/10 requests completed"]
    assert _step(1, math.nan, 0.02).problems(SLO)
