"""The engine profiles: one per engine kind, and what others read from them agrees with the
modules they name (builders, capacity's memory rules, the router's metric parsers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.capacity.engine_rules import memory_rule
from controlplane.capacity.layout import layout_of
from controlplane.catalog.formats import format_rule
from controlplane.engines import (
    PROFILES,
    LaunchContext,
    build_command,
    find_profile,
    metrics_flavor,
    profile_for,
    sim_command,
    target_version,
)
from controlplane.engines.registry import DEFAULT
from controlplane.router.engine_metrics import FLAVORS
from controlplane.spec import Topology, load_topology, parse_spec, resolve
from controlplane.spec.engine_checks import spec_rules
from controlplane.spec.models import EngineKind, EngineSpec
from controlplane.spec.pd_engines import checked_rule, pd_rule, transfer_rule
from tests.conftest import TOPOLOGIES

SHIPPED = sorted(TOPOLOGIES.glob("*.yaml"))
# A shipped topology each engine serves (TensorRT-LLM's matrix has the small models only).
SERVED_BY = {
    EngineKind.TRTLLM: TOPOLOGIES / "chatglm2-6b-trtllm-int8-l40sx1.yaml",
}
AIR = TOPOLOGIES / "glm45-air-fp8-h200x1.yaml"


def _with_engine(path: Path, kind: EngineKind, flavor: str | None = None) -> Topology:
    """The topology of `path` served by `kind` (the sim's flavour as given)."""
    import yaml

    data = yaml.safe_load(path.read_text())
    data["engine"] = {"kind": kind.value}
    if flavor is not None:
        data["simulation"] = {**(data.get("simulation") or {}), "flavor": flavor}
    return resolve(parse_spec(yaml.safe_dump(data), origin=str(path), default_name=path.stem))


def test_one_profile_per_engine_kind() -> None:
    assert sorted(p.kind.value for p in PROFILES) == sorted(k.value for k in EngineKind)
    for kind in EngineKind:
        assert profile_for(kind).kind is kind
        assert profile_for(kind.value) is profile_for(kind)
    assert find_profile("no-such-engine") is None
    assert DEFAULT.kind is EngineSpec().kind  # the spec's default engine


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_build_command_is_the_profiles_builder(path: Path) -> None:
    topo = load_topology(path)
    profile = profile_for(topo.engine)
    for rank in range(topo.nodes):
        context = LaunchContext(rank, topo.nodes, 0.85)
        built = profile.build(topo, context)
        expected = sim_command(topo, context) if profile.always_simulated else built
        assert build_command(topo, context) == expected
        assert build_command(topo, context, simulate=True) == sim_command(topo, context)


def test_memory_rule_is_the_profiles() -> None:
    """Capacity finds the same rule object by `Layout.engine` as the profile names; the
    simulator (no rule of its own) is sized by the engine it mimics, SGLang by default."""
    for profile in PROFILES:
        if profile.memory_rule is None:
            continue
        topo = _with_engine(SERVED_BY.get(profile.kind, AIR), profile.kind)
        assert memory_rule(layout_of(topo)) is profile.memory_rule
    path = AIR
    for flavor in ("sglang", "vllm", "trtllm"):
        layout = layout_of(_with_engine(path, EngineKind.SIM, flavor))
        assert memory_rule(layout) is profile_for(flavor).memory_rule
    unflavored = layout_of(_with_engine(path, EngineKind.SIM)).with_(flavor=None)
    assert memory_rule(unflavored) is DEFAULT.memory_rule


def test_format_and_pd_rules_are_the_profiles() -> None:
    """The catalog and spec find, by the engine's name, the rule objects its profile names.
    PD: the simulator (no rule of its own) is checked by the rule of the engine it mimics
    when glmctl knows that one's PD flags, else SGLang's; TensorRT-LLM by its own, which
    refuses PD; transfer defaults come from a rule that knows the flags."""
    for profile in PROFILES:
        assert format_rule(profile.name) is profile.format_rule
        assert format_rule(profile.name).engine == profile.name
        assert pd_rule(profile.name) is profile.pd_rule
        if profile.pd_rule is not None:
            assert checked_rule(profile.name, "vllm") is profile.pd_rule
            assert transfer_rule(profile.name).supported
    sim = profile_for(EngineKind.SIM)
    assert sim.pd_rule is None
    assert checked_rule(sim.name, "vllm") is profile_for("vllm").pd_rule
    assert checked_rule(sim.name, "sglang") is profile_for("sglang").pd_rule
    for unknown in ("trtllm", None):
        assert checked_rule(sim.name, unknown) is DEFAULT.pd_rule
    trtllm = profile_for(EngineKind.TRTLLM).pd_rule
    assert trtllm is not None and not trtllm.supported
    assert transfer_rule("trtllm") is DEFAULT.pd_rule


def test_metric_names_are_ones_the_router_reads() -> None:
    for profile in PROFILES:
        assert profile.metrics is None or profile.metrics in FLAVORS
        assert metrics_flavor(profile.name) in FLAVORS
    assert metrics_flavor("sim") == DEFAULT.metrics  # serves its flavour's names
    assert metrics_flavor("unknown") == DEFAULT.metrics


def test_spec_rules_are_the_profiles() -> None:
    """Spec validation finds the profile's own rules; the version resolve fills in is the
    one the builder targets, the first the profile supports."""
    for profile in PROFILES:
        assert spec_rules(profile.kind) is profile.spec_rules
        assert profile.versions[0] == profile.target_version == target_version(profile.kind)
        if not profile.always_simulated:
            topo = _with_engine(SERVED_BY.get(profile.kind, AIR), profile.kind)
            assert topo.spec.engine.version == profile.target_version


def test_venv_recipes_name_their_version() -> None:
    for profile in PROFILES:
        if profile.venv is not None:
            recipe = profile.venv(profile.target_version)
            assert recipe.name.endswith(profile.target_version) and recipe.check_import


def test_planned_flavor() -> None:
    """A simulated engine (and TensorRT-LLM) is planned with its simulation flavour's names;
    SGLang and vLLM with their own."""
    for kind, flavor, planned in (
        (EngineKind.SIM, "vllm", "vllm"),
        (EngineKind.TRTLLM, "vllm", "vllm"),
        (EngineKind.SGLANG, "vllm", "sglang"),
        (EngineKind.VLLM, "sglang", "vllm"),
    ):
        topo = _with_engine(SERVED_BY.get(kind, AIR), kind, flavor)
        assert profile_for(kind).planned_flavor(topo, EngineKind.SGLANG) == planned


def test_shutdown_bound_reaches_the_command() -> None:
    """An engine whose drain on SIGTERM has a bound of its own gets it from the replica's
    drain timeout; one without never gets a flag it does not have."""
    for profile in PROFILES:
        if profile.always_simulated:
            continue
        topo = _with_engine(SERVED_BY.get(profile.kind, AIR), profile.kind)
        with_drain = profile.build(topo, LaunchContext(0, topo.nodes, 0.85, shutdown_timeout_s=42))
        assert with_drain is not None
        text = " ".join(with_drain.argv)
        if profile.shutdown.bound_flag:
            argv = list(with_drain.argv)
            assert argv[argv.index(profile.shutdown.bound_flag) + 1] == "42"
        else:
            assert "shutdown" not in text
