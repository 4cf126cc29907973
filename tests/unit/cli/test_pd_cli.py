"""`glmctl` on prefill/decode topologies: capacity sizes both pools, plan and render both."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.unit.cli.helpers import CliResult
from tests.unit.spec.pd_helpers import AIR_PD, H200_PD

Glmctl = Callable[..., CliResult]


def test_plan_shows_both_pools(glmctl: Glmctl) -> None:
    result = glmctl("plan", AIR_PD)
    assert result.code == 0, result.text
    assert "pool       prefill (engine group glm45-air-fp8-pd-prefill)" in result.out
    assert "pool       decode (engine group glm45-air-fp8-pd-decode)" in result.out
    words = " ".join(result.out.split())  # the console wraps long lines
    assert words.count("on GPUs:") == 2 and "--disaggregation-mode decode" in words
    data = json.loads(glmctl("plan", H200_PD, "-o", "json").out)
    assert [(g["name"], g["pd"]) for g in data["groups"]] == [
        ("glm45-fp8-pd-h200-prefill", "prefill"),
        ("glm45-fp8-pd-h200-decode", "decode"),
    ]


def test_render_writes_both_pools(glmctl: Glmctl, tmp_path: object) -> None:
    from pathlib import Path

    out = Path(str(tmp_path))
    assert glmctl("render", AIR_PD, "--target", "ray", "--out", out).code == 0
    assert glmctl("render", AIR_PD, "--target", "k8s", "--out", out / "k8s").code == 0
    text = (out / "glm45-air-fp8-pd.yaml").read_text()
    assert "name: EngineGroup-prefill" in text and "name: EngineGroup-decode" in text
    service = (out / "k8s" / "glm45-air-fp8-pd" / "rayservice.yaml").read_text()
    assert "groupName: prefill-h100-x4" in service and "groupName: decode-h100-x4" in service


def test_render_of_a_colocated_topology_is_untouched(glmctl: Glmctl, tmp_path: object) -> None:
    from tests.conftest import TOPOLOGIES

    result = glmctl("render", TOPOLOGIES / "glm45-fp8.yaml", "--out", tmp_path)
    assert result.code == 0, result.text


def test_capacity_prints_both_pools_and_the_transfer(glmctl: Glmctl) -> None:
    result = glmctl("capacity", AIR_PD)
    assert result.code == 0, result.text
    for heading in ("prefill pool", "decode pool", "KV transfer", "reserved decode tokens"):
        assert heading in result.out
    assert "Fits: 1 x prefill (4 x H100) + 1 x decode (4 x H100)" in result.out


def test_capacity_json_carries_both_pools(glmctl: Glmctl) -> None:
    result = glmctl("capacity", H200_PD, "-o", "json")
    data = json.loads(result.out)
    assert [p["role"] for p in data["pools"]] == ["prefill", "decode"]
    assert data["transfer"]["bytes_per_request"] > 0 and data["fits"] is True


def test_search_with_a_workload_names_the_winner_and_why(glmctl: Glmctl) -> None:
    result = glmctl(
        "capacity", H200_PD, "--search", "--workload", "8192/512@16", "--max-gpus", "32",
        "-o", "json",
    )  # fmt: skip
    data = json.loads(result.out)
    # Which layout wins is the performance model's to say (it is PD for 8k/512:
    # tests/unit/capacity/test_pd_compare.py::test_long_prompts_favour_pd); the command
    # names a winner and a reason that agree.
    opening = {"disaggregated": "PD wins", "colocated": "colocated serving wins"}
    assert data["reason"].startswith(opening[data["winner"]]), data["reason"]
    assert {row["kind"] for row in data["layouts"]} == {"disaggregated", "colocated"}


@pytest.mark.parametrize("text", ["8k/512", "8192/512@0", "8192/512,tpot=1s", "8192/512,itl=fast"])
def test_a_bad_workload_is_a_user_error(glmctl: Glmctl, text: str) -> None:
    result = glmctl("capacity", H200_PD, "--workload", text)
    assert result.code == 2 and "To fix:" in result.text and "Traceback" not in result.text


def test_a_colocated_topology_can_be_compared_too(glmctl: Glmctl) -> None:
    from tests.conftest import TOPOLOGIES

    result = glmctl(
        "capacity", TOPOLOGIES / "glm45-air-fp8-h100x2.yaml", "--workload", "256/256@16",
        "--max-gpus", "8",
    )  # fmt: skip
    assert result.code == 0, result.text
    assert "reason:" in result.out and "colocated" in result.out


def test_search_on_a_pd_topology_asks_for_a_workload(glmctl: Glmctl) -> None:
    result = glmctl("capacity", AIR_PD, "--search")
    assert result.code == 2 and "--workload" in result.text


def test_validate_resolves_each_pool(glmctl: Glmctl, tmp_path: object) -> None:
    """A pool that cannot resolve (prefill TP 3 of 4 GPUs) fails `validate`, not only `capacity`."""
    from pathlib import Path

    assert glmctl("validate", AIR_PD).code == 0
    bad = Path(str(tmp_path)) / "bad-pool.yaml"
    text = AIR_PD.read_text(encoding="utf-8")
    bad.write_text(
        text.replace("  prefill:\n    replicas: 1", "  prefill:\n    replicas: 1\n    gpus: 3"),
        encoding="utf-8",
    )
    result = glmctl("validate", bad)
    assert result.code != 0
    assert "prefill pool" in result.text and "Traceback" not in result.text
