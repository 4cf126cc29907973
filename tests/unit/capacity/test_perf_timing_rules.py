"""The performance model's engine knowledge lives in the timing rules the profiles name.

Capacity cannot import the engine profiles (it sits below them), so it looks a rule up by the
topology's engine; these tests keep that lookup and the profiles in agreement, and check that
each rule changes the model the way its docstring says.
"""

from __future__ import annotations

import dataclasses

import yaml

from controlplane.capacity.performance import acceptance_length, performance_model
from controlplane.capacity.timing_rules import SGLANG_TIMING, TIMING_RULES, timing_rule
from controlplane.engines import PROFILES, profile_for
from controlplane.spec import Topology, parse_spec, resolve
from controlplane.spec.models import EngineKind
from tests.conftest import TOPOLOGIES

AIR = TOPOLOGIES / "glm45-air-fp8-h200x1.yaml"


def _served_by(kind: EngineKind, flavor: str | None = None, mtp: bool = False) -> Topology:
    doc = yaml.safe_load(AIR.read_text())
    doc["engine"] = {"kind": kind.value}
    if flavor is not None:
        doc["simulation"] = {**doc.get("simulation", {}), "flavor": flavor}
    if mtp and kind is EngineKind.VLLM:
        doc["speculative"] = {"algorithm": "mtp", "num_steps": 3, "num_draft_tokens": 3}
    elif mtp:
        doc["speculative"] = {
            "algorithm": "eagle",
            "num_steps": 3,
            "eagle_topk": 1,
            "num_draft_tokens": 4,
        }
    else:
        doc["speculative"] = {"algorithm": "none"}
    return resolve(parse_spec(yaml.safe_dump(doc), origin="timing-rule-test.yaml"))


def test_the_rule_capacity_finds_is_the_profiles() -> None:
    """SGLang and vLLM topologies find their profile's rule; the simulator the rule of the
    engine it mimics, SGLang's when it names none."""
    named = {p.kind: p.timing_rule for p in PROFILES if p.timing_rule is not None}
    assert set(named.values()) == set(TIMING_RULES)
    for kind in (EngineKind.SGLANG, EngineKind.VLLM):
        assert timing_rule(_served_by(kind)) is named[kind]
    for flavor in ("sglang", "vllm"):
        sim = _served_by(EngineKind.SIM, flavor)
        assert timing_rule(sim) is profile_for(flavor).timing_rule
    sim = _served_by(EngineKind.SIM)
    simulation = sim.spec.simulation.model_copy(update={"flavor": None})
    unflavored = dataclasses.replace(
        sim, spec=sim.spec.model_copy(update={"simulation": simulation})
    )
    assert timing_rule(unflavored) is SGLANG_TIMING


def test_the_prefill_stall_follows_the_separate_pass() -> None:
    """A separate prefill pass (SGLang) costs the stall on top of the same forward; a prompt
    chunk inside the decode step (vLLM) does not."""
    sglang = performance_model(_served_by(EngineKind.SGLANG))
    vllm = performance_model(_served_by(EngineKind.VLLM))
    stall = sglang.prefill_seconds(512) - vllm.prefill_seconds(512)
    assert SGLANG_TIMING.separate_prefill_pass
    assert stall > 0.0
    # Decode steps are the same forward on either engine (the stall is a prefill-only term).
    assert sglang.decode_step_seconds(8, 8 * 1024) == vllm.decode_step_seconds(8, 8 * 1024)


def test_mtp_counts_follow_the_rule() -> None:
    """vLLM verifies its drafts plus a bonus token; SGLang's draft-token count already holds
    the bonus (3 steps / 4 draft tokens accept at most 3 drafts, as vLLM's 3 tokens do) and
    runs one more draft pass (the draft extend)."""
    sglang, vllm = _served_by(EngineKind.SGLANG, mtp=True), _served_by(EngineKind.VLLM, mtp=True)
    assert acceptance_length(vllm) == acceptance_length(sglang) > 2.0
    assert timing_rule(vllm).verify_tokens(3) == timing_rule(sglang).verify_tokens(4) == 4
    assert timing_rule(sglang).drafted_positions(3, 3) == 2
    assert timing_rule(vllm).drafted_positions(3, 3) == 3
    assert (timing_rule(sglang).draft_passes(3), timing_rule(vllm).draft_passes(3)) == (4, 3)
    # The extra draft pass shows in the step: same verify width, one more draft forward.
    step_s = performance_model(sglang).decode_step_seconds(8, 8 * 1024)
    step_v = performance_model(vllm).decode_step_seconds(8, 8 * 1024)
    assert step_s > step_v


def test_a_prompt_chunk_costs_the_decodes_a_whole_pass_only_when_it_runs_separately() -> None:
    """SGLang's decodes wait for the whole prefill pass (its own floors, weight reads and the
    stall); vLLM's chunk shares the decode step's forward and adds only its tokens' cost."""
    sglang = performance_model(_served_by(EngineKind.SGLANG))
    vllm = performance_model(_served_by(EngineKind.VLLM))
    assert sglang.prompt_chunk_seconds(256, 1024) == sglang.prefill_seconds(256, 1024)
    shared = vllm.prefill_seconds(1, 1024)
    assert vllm.prompt_chunk_seconds(256, 1024) == vllm.prefill_seconds(256, 1024) - shared
    assert vllm.prompt_chunk_seconds(256, 1024) < sglang.prompt_chunk_seconds(256, 1024)
    assert sglang.prompt_chunk_seconds(0) == vllm.prompt_chunk_seconds(0) == 0.0
