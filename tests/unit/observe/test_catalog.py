"""The catalogue names what the engines really export (checked against the simulator, which
renders vLLM's and SGLang's names), and the histogram bounds glmctl and its simulator use
are each engine's own (checked against a transcription of the engines' source)."""

from __future__ import annotations

import re

import pytest

from controlplane.catalog import engine_metrics as mn
from controlplane.engines.sim import metrics as sim
from controlplane.observe import catalog as cat
from controlplane.spec import EngineKind
from tests.unit.observe.engine_layouts import LAYOUTS, Layout


def _names(flavor: EngineKind) -> set[str]:
    m = sim.EngineMetrics(spec_drafts=3, spec_draft_tokens=9, spec_accepted_tokens=5)
    m.log_ttft(0.5, 0.5)  # SGLang's `is_streaming` series exist once a request finished
    m.log_finished(False, 10, 5, 1.0)
    g = sim.EngineGauges(1, 0, 0.5, 10, 100, 2.5, 20.0)
    text = sim.render(flavor, "glm", m, g)
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


@pytest.mark.parametrize("flavor", [EngineKind.VLLM, EngineKind.SGLANG])
def test_every_engine_series_exists_in_that_flavour(flavor: EngineKind) -> None:
    names = _names(flavor)
    for series in cat.ENGINE:
        name = series.vllm if flavor is EngineKind.VLLM else series.sglang
        wanted = f"{name}_count" if series.kind is cat.Kind.HISTOGRAM else name
        assert wanted in names, f"{series.unified}: {wanted} is not exported by {flavor}"
    ratios = (*cat.VLLM_PREFIX, *cat.VLLM_SPEC) if flavor is EngineKind.VLLM else (
        cat.SGLANG_PREFIX_GAUGE, cat.SGLANG_SPEC_GAUGE)  # fmt: skip
    assert set(ratios) <= names


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.engine)
def test_bucket_bounds_are_the_engines_own(layout: Layout) -> None:
    """glmctl's copy (catalog/engine_metrics.py) equals the transcription from the engine's
    source, and the simulator of that flavour exports exactly those `le` values."""
    names = mn.prometheus_metrics(layout.engine)
    assert (names.ttft.name, names.itl.name) == (layout.ttft, layout.itl)
    assert tuple(mn.le_text(b) for b in names.ttft.bounds) == layout.ttft_le
    assert tuple(mn.le_text(b) for b in names.itl.bounds) == layout.itl_le
    m = sim.EngineMetrics()
    m.log_ttft(0.5, 0.5)  # one request: SGLang's `is_streaming` series exist
    text = sim.render(
        EngineKind(layout.engine), "glm", m, sim.EngineGauges(1, 0, 0.5, 10, 100, 1.0, 2.0)
    )
    for name, wanted in ((layout.ttft, layout.ttft_le), (layout.itl, layout.itl_le)):
        les = re.findall(rf'^{re.escape(name)}_bucket{{.*le="([^"]+)"}}', text, re.MULTILINE)
        assert tuple(les) == (*wanted, "+Inf")


def test_simulated_histogram_counts_are_exact_at_each_flavours_bounds() -> None:
    m = sim.EngineMetrics()
    for value in (0.05, 1.0, 1.5, 2.0, 2.4, 3.0):
        m.log_ttft(value, value)
    g = sim.EngineGauges(1, 0, 0.5, 10, 100, 1.0, 2.0)
    for flavor, le, expected in (
        (EngineKind.SGLANG, "2.0", 4),
        (EngineKind.VLLM, "2.5", 5),
        (EngineKind.VLLM, "1.0", 2),
        (EngineKind.SGLANG, "0.1", 1),
    ):
        text = sim.render(flavor, "glm", m, g)
        line = next(
            x
            for x in text.splitlines()
            if "time_to_first_token_seconds_bucket" in x and f'le="{le}"' in x
        )
        assert float(line.rsplit(" ", 1)[1]) == expected, (flavor, le)


def test_selector_matches_both_flavours() -> None:
    series = cat.engine_series("glmctl:engine_running")
    assert cat.engine_selector(series) == (
        '{__name__=~"vllm:num_requests_running|sglang:num_running_reqs"}'
    )
    with pytest.raises(KeyError):
        cat.engine_series("glmctl:nothing")


def test_router_names_are_the_routers() -> None:
    from controlplane.router import metrics as router

    exported = set(router._HELP) | {"glmctl_router_prefix_hit_ratio", "glmctl_router_inflight"}
    exported |= {"glmctl_router_redis_up", "glmctl_router_endpoint_up"}
    assert {m.name for m in cat.ROUTER} == exported
    assert "glmctl_router_redis_up 0" in router.redis_up(False)
