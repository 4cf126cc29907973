"""glmctl's KV pool against public vLLM and SGLang logs (tests/data/capacity/kv_cases.yaml).

Every case runs through the same model `glmctl capacity` uses; the error table is printed
(`pytest -s` shows it) and is the table of docs/guides/capacity.md. A case outside the
tolerance must say why (`known_gap`); a case that cannot be run says why (`excluded`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.capacity import constants as c
from ops.calibration.kv_table import (
    TOKEN_TOLERANCE,
    WEIGHT_TOLERANCE,
    case_layout,
    error_rows,
    markdown_table,
)

ROOT = Path(__file__).resolve().parents[3]
CASES = ROOT / "tests" / "data" / "capacity" / "kv_cases.yaml"


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CASES.read_text(encoding="utf-8"))
    return loaded


def test_every_case_is_within_tolerance_or_says_why(data: dict[str, Any]) -> None:
    rows = error_rows(data)
    table = markdown_table(rows)
    print("\n" + table)
    computed = [r for r in rows if not r.excluded]
    assert len(rows) >= 12 and len(computed) >= 10
    for row in computed:
        if not row.within:
            assert row.known_gap, f"{row.case_id}: outside tolerance without a stated reason"
    within = [r for r in computed if r.within]
    assert len(within) >= len(computed) - 1, "at most one case may be a stated gap"
    for row in within:
        assert row.token_error is not None and abs(row.token_error) <= TOKEN_TOLERANCE
        if row.weight_error is not None:
            assert abs(row.weight_error) <= WEIGHT_TOLERANCE


def test_cases_are_public_and_complete(data: dict[str, Any]) -> None:
    engines = set()
    for case in data["cases"]:
        assert case["source"].startswith("https://github.com/"), case["id"]
        assert case["engine"] in ("vllm", "sglang") and case.get("version")
        assert case["reported"].get("kv_tokens") or case["reported"].get("kv_gib")
        if not case.get("excluded"):
            assert case.get("mem_fraction") is not None, f"{case['id']}: launch fraction"
        for name in case.get("sets") or ():
            assert hasattr(c, name), f"{case['id']} names an unknown constant {name}"
        engines.add(case["engine"])
    assert engines == {"vllm", "sglang"}
    assert any("glm" in case["model"] for case in data["cases"]), "GLM-family case listed"


def test_pipeline_and_tensor_splits_reach_the_rule(data: dict[str, Any]) -> None:
    """The calibration layouts carry the version, page size and node count of their logs."""
    by_id = {case["id"]: case for case in data["cases"]}
    llm_d = case_layout(by_id["vllm-llama-3.1-8b-h100-tp1"], data)
    assert llm_d.page_size == 128 and llm_d.engine_version == (0, 11)
    two_nodes = case_layout(by_id["vllm-qwen2-7b-a100-40g-tp2-two-nodes-ray"], data)
    assert two_nodes.nodes == 2


def test_docs_show_the_table(data: dict[str, Any]) -> None:
    page = (ROOT / "docs" / "guides" / "capacity.md").read_text(encoding="utf-8")
    assert markdown_table(error_rows(data)) in page, (
        "the calibration table of docs/guides/capacity.md is stale: regenerate it with"
        " `python -m ops.calibration.kv_table tests/data/capacity/kv_cases.yaml`"
    )
