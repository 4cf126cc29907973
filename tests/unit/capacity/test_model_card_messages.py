"""Capacity messages speak of the model at hand: GLM-4.5's card sentences only for the GLM-4.5
family, a general sentence otherwise (issue 24)."""

from __future__ import annotations

import pytest

from controlplane.capacity.report import capacity_report
from tests.unit.capacity.conftest import make_topology

NON_GLM45 = [("chatglm2-6b", "fp16", "L40S", 1), ("glm-4-9b", "bf16", "L40S", 1)]


@pytest.mark.parametrize(("model", "precision", "gpu", "count"), NON_GLM45)
def test_non_glm45_report_quotes_no_glm45_card(
    model: str, precision: str, gpu: str, count: int
) -> None:
    report = capacity_report(make_topology(model, precision, gpu, count, context=8192))
    note = report.host_note
    assert "model card" not in note and "1 TB" not in note, note
    assert "This layout needs" in note and "busiest node" in note
    assert f"{report.host_ram_per_node_bytes / 1e9:.0f} GB" in note, note


def test_glm45_report_keeps_the_card_sentence() -> None:
    report = capacity_report(make_topology("glm-4.5", "bf16", "H200", 8))
    assert "The model card asks for more than 1 TB of server memory" in report.host_note
    assert "This layout needs" in report.host_note


@pytest.mark.parametrize(
    ("model", "precision", "gpu", "count", "card"),
    [("chatglm2-6b", "fp16", "L40S", 1, False), ("glm-4.5-air", "fp8", "H200", 1, True)],
)
def test_mem_fraction_finding_names_the_card_only_for_glm45(
    model: str, precision: str, gpu: str, count: int, card: bool
) -> None:
    topo = make_topology(
        model, precision, gpu, count, context=8192, engine={"kind": "sglang", "mem_fraction": 0.2}
    )
    report = capacity_report(topo)
    (finding,) = [f for f in report.findings if f.code == "mem-fraction-too-small"]
    assert ("model card" in finding.message) is card, finding.message
