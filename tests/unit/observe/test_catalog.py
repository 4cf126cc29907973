"""The catalogue names what the engines really export (checked against the simulator, which
renders vLLM's and SGLang's names) and the histogram bounds the SLO rules interpolate in."""

from __future__ import annotations

import pytest

from controlplane.engines.sim import metrics as sim
from controlplane.observe import catalog as cat
from controlplane.spec import EngineKind


def _names(flavor: EngineKind) -> set[str]:
    m = sim.EngineMetrics(spec_drafts=3, spec_draft_tokens=9, spec_accepted_tokens=5)
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


def test_slo_buckets_are_the_engines_buckets() -> None:
    assert cat.TTFT_BUCKETS == sim.TTFT_BUCKETS
    assert cat.ITL_BUCKETS == sim.ITL_BUCKETS


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
