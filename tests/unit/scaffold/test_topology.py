"""`glmctl init`'s topologies: they validate, pass the capacity check and plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.capacity.report import capacity_report
from controlplane.errors import UserError
from controlplane.planner import embedded_inventory, plan
from controlplane.scaffold.topology import Answers, offered_models, scaffold
from controlplane.spec import load_topology

CASES = {
    "glm45-fp8-h100x8": Answers("glm-4.5", "H100", 8, precision="fp8"),
    "glm45-air-fp8-h200x1": Answers("glm-4.5-air", "H200", 1, precision="fp8"),
    "glm-5-fp8-h200x8": Answers("glm-5", "H200", 8, precision="fp8", engine="vllm"),
    "glm47-flash-bf16-h200x1": Answers("glm-4.7-flash", "H200", 1, context=202752, batch=1),
    "glm45v-bf16-h100x4": Answers("glm-4.5v", "H100", 4, engine="vllm", batch=4),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_file_validates_fits_and_plans(name: str, tmp_path: Path) -> None:
    made = scaffold(CASES[name])
    assert made.name == name
    path = tmp_path / f"{name}.yaml"
    path.write_text(made.text)
    topo = load_topology(path)  # what `glmctl validate` does
    assert topo.warnings == [] or all("context" not in w for w in topo.warnings)
    report = capacity_report(topo)
    assert report.fits, report.verdict
    deployment = plan(topo, embedded_inventory(topo))
    assert deployment.group.replicas.initial == made.replicas


def test_fp8_on_8_h100_is_the_model_cards_layout() -> None:
    """Block-FP8 experts of 1536 cannot be cut 8 ways in 128-blocks: TP 8 needs EP 8."""
    topo = scaffold(CASES["glm45-fp8-h100x8"]).topology
    assert (topo.gpus_per_replica, topo.tp, topo.pp, topo.ep) == (8, 8, 1, 8)


def test_air_on_one_h200_lowers_the_context_and_says_why() -> None:
    made = scaffold(CASES["glm45-air-fp8-h200x1"])
    assert made.topology.context_length < 32768
    assert made.topology.context_length % 1024 == 0
    assert "context_length was 32768" in made.text
    # one step longer does not fit on 1 x H200: the longest that fits was taken
    longer = Answers("glm-4.5-air", "H200", 1, precision="fp8",
                     context=made.topology.context_length + 1024)  # fmt: skip
    assert scaffold(longer).topology.context_length == made.topology.context_length


def test_replicas_fill_the_gpus_given() -> None:
    made = scaffold(Answers("glm-4.5-air", "H200", 8, precision="fp8", context=16384))
    assert made.replicas * made.topology.gpus_per_replica == 8
    assert made.replicas > 1 and "replicas:" in made.text


def test_every_value_has_a_comment_above_it() -> None:
    lines = scaffold(CASES["glm45-fp8-h100x8"]).text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", " ")):
            assert lines[i - 1].startswith("#"), line


def test_nothing_fits_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no layout of up to 1 x H100"):
        scaffold(Answers("glm-4.5", "H100", 1, precision="bf16"))


def test_answers_that_make_no_topology_name_the_field() -> None:
    """The one pydantic-error formatter (spec/messages.py), not pydantic's own first line."""
    with pytest.raises(UserError) as caught:
        scaffold(Answers("glm-4.5-air", "H100", 8, engine="foo"))
    message = str(caught.value)
    assert "`engine.kind: foo` is not one of" in message and "sglang" in message
    assert "validation error" not in message


def test_init_offers_the_new_generations_first() -> None:
    offered = offered_models()
    assert offered[:5] == ["glm-5", "glm-4.6v", "glm-4.5v", "glm-4.7-flash", "glm-4.7"]
    assert "glm-4.5" in offered and "glm-4.5-fp8" not in offered and "glm-4.5-tiny" not in offered
