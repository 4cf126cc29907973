"""`glmctl capacity`, through the console-script entry as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli.helpers import CliResult, invoke

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def glmctl(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return lambda *argv: invoke([str(a) for a in argv], capsys, monkeypatch)


def test_file_report_text(glmctl) -> None:  # type: ignore[no-untyped-def]
    result: CliResult = glmctl("capacity", REPO / "topologies" / "glm45-fp8.yaml")
    assert result.code == 0, result.text
    for words in (
        "Fits: 4 x H200",
        "Per-GPU memory",
        "Host RAM per node",
        "1 TB",
        "--mem-fraction-static",
    ):
        assert words in result.out


def test_file_report_json(glmctl) -> None:  # type: ignore[no-untyped-def]
    result = glmctl("capacity", REPO / "topologies" / "glm45-fp8-vllm.yaml", "-o", "json")
    data = json.loads(result.out)
    assert data["fits"] and data["engine_mem_fraction_flag"] == "--gpu-memory-utilization"
    assert data["host_ram_per_node_bytes"] > 0 and data["ranks"]


def test_search_lists_layouts_smallest_first(glmctl) -> None:  # type: ignore[no-untyped-def]
    argv = [
        "capacity",
        "--model",
        "glm-4.5",
        "--precision",
        "fp8",
        "--gpu",
        "h200",
        "--context",
        "131072",
        "--batch",
        "8",
    ]
    result = glmctl(*argv, "--search", "-o", "json")
    assert result.code == 0, result.text
    rows = json.loads(result.out)
    clean = [r for r in rows if not r["flags"]]
    assert clean and rows[: len(clean)] == clean, "flagged layouts rank after clean ones"
    assert [r["gpus"] for r in clean] == sorted(r["gpus"] for r in clean)
    assert all(r["headroom_per_gpu_bytes"] >= 0 for r in rows)
    assert all(r["kv_margin"] >= 0 for r in rows)  # every listed layout holds the workload
    # 5 x H200 as TP 1 x PP 5 with EAGLE fits in memory but is flagged: never first.
    flagged = [r for r in rows if any("pp-speculative" in f for f in r["flags"])]
    assert flagged and rows.index(flagged[0]) >= len(clean)
    text = glmctl(*argv, "--search")
    assert "Feasible layouts" in text.out and "headroom" in text.out and "KV margin" in text.out


def test_model_flags_without_gpus_search(glmctl) -> None:  # type: ignore[no-untyped-def]
    result = glmctl("capacity", "--model", "glm-4.5-air", "--gpu", "H100", "-o", "json")
    assert result.code == 0 and json.loads(result.out)[0]["gpus"] >= 2


def test_not_fitting_report_exits_zero_with_suggestions(glmctl) -> None:  # type: ignore[no-untyped-def]
    result = glmctl(
        "capacity", "--model", "glm-4.5", "--precision", "bf16", "--gpu", "h100", "--gpus", "8"
    )
    assert result.code == 0 and "Does not fit" in result.out and "fits with" in result.out


@pytest.mark.parametrize(
    "argv,words",
    [
        (["--model", "glm-9000", "--gpus", "4"], "unknown model"),
        (["--model", "glm-4.5", "--gpus", "0"], "at least one GPU"),
        (["--model", "glm-4.5", "--gpus", "4", "--context", "200000"], "exceeds"),
        (["--model", "glm-4.5", "--gpus", "4", "--batch", "-1"], "at least 1"),
        (["--model", "glm-4.5", "--gpu", "Z80", "--gpus", "4"], "unknown GPU type"),
        ([], "give a topology file or --model"),
    ],
)
def test_bad_input_is_a_clear_user_error(glmctl, argv: list[str], words: str) -> None:  # type: ignore[no-untyped-def]
    result = glmctl("capacity", *argv)
    assert result.code == 2, result.text
    assert words in result.err and "Traceback" not in result.err
    assert "fix" in result.err.lower()


def test_search_with_nothing_feasible_is_a_user_error(glmctl) -> None:  # type: ignore[no-untyped-def]
    result = glmctl(
        "capacity",
        "--model",
        "glm-4.5",
        "--precision",
        "bf16",
        "--gpu",
        "V100-16G",
        "--search",
        "--max-gpus",
        "8",
    )
    assert result.code == 2 and "no layout" in result.err


def test_edge_device_footprint_lines(glmctl) -> None:  # type: ignore[no-untyped-def]
    result = glmctl("capacity", "--model", "chatglm-6b", "--gpu", "xiaomi-12", "--context", "512")
    assert result.code == 0, result.text
    for words in ("embedding (kept on disk)", "KV cache (512 tokens)", "runtime overhead", "MNN"):
        assert words in result.out
    data = json.loads(
        glmctl("capacity", "--model", "glm-edge-4b", "--gpu", "SD8-ELITE", "-o", "json").out
    )
    assert data["fits"] and data["lines"][0]["line"] == "decoder linears (int4)"
    assert sum(line["gb"] for line in data["lines"]) == pytest.approx(data["total_gb"], abs=0.01)


def test_edge_device_refuses_what_it_cannot_size(glmctl) -> None:  # type: ignore[no-untyped-def]
    result = glmctl("capacity", "--model", "glm-4.5", "--gpu", "lnl-288v")
    assert result.code != 0 and "dense models" in result.text and "To fix" in result.text
    assert "Traceback" not in result.text
