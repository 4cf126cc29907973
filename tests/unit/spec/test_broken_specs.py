"""Broken topology specs: every one gets a one-paragraph error naming file, line and fix.

Each case is a small YAML file with one mistake. The test loads it the way `glmctl` does
(`load_topology`), then again through the real console-script entry (`run()`), and checks:
the error names the file and the line of the mistake, says "To fix:", names the field or
value, leaks no pydantic wording and no traceback, and the CLI exits with code 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controlplane.errors import SpecError
from controlplane.spec import load_topology
from tests.unit.cli.helpers import CliResult

# Lines 1-5 of most cases; the mistake follows on line 6 unless said otherwise.
BASE = "model: glm-4.5\nprecision: fp8\ngpus:\n  type: H200\n  count: 4\n"
LEAKS = ("Input should be", "Value error", "pydantic", "Traceback", "errors.pydantic.dev")


@dataclass(frozen=True)
class Broken:
    id: str
    text: str
    line: int | None  # None: a whole-file problem (empty file)
    says: tuple[str, ...]  # substrings the message must contain
    files: dict[str, str] = field(default_factory=dict)  # extra files next to the spec


CASES = [
    # ----- typos at every level, with did-you-mean ------------------------------------
    Broken(
        "typo-top", BASE + "context_lenght: 32768\n", 6, ("`context_lenght`", "`context_length`")
    ),
    Broken(
        "typo-gpus", "model: glm-4.5\ngpus:\n  tpye: H200\n  count: 4\n", 3, ("`tpye`", "`type`")
    ),
    Broken("typo-parallelism", BASE + "parallelism:\n  tensr: 4\n", 7, ("`tensr`", "`tensor`")),
    Broken(
        "typo-speculative", BASE + "speculative:\n  num_step: 3\n", 7, ("`num_step`", "`num_steps`")
    ),
    Broken(
        "typo-engine",
        BASE + "engine:\n  mem_fractoin: 0.8\n",
        7,
        ("`mem_fractoin`", "`mem_fraction`"),
    ),
    Broken("typo-router", BASE + "router:\n  polcy: session\n", 7, ("`polcy`", "`policy`")),
    Broken(
        "typo-autoscaling",
        BASE + "autoscaling:\n  target_ongoing: 4\n",
        7,
        ("`target_ongoing`", "`target_ongoing_requests`"),
    ),
    Broken("typo-model-key", "modle: glm-4.5\ngpus: 4xH200\n", 1, ("`modle`", "`model`")),
    Broken("engine-flag-name", BASE + "parallelism:\n  tp: 4\n", 7, ("`tp`", "`tensor`")),
    Broken("misplaced-key", BASE + "tensor: 4\n", 6, ("`tensor`", "parallelism: {tensor: 4}")),
    Broken(
        "misplaced-synonym",
        BASE + "tensor_parallel_size: 4\n",
        6,
        ("`tensor_parallel_size`", "parallelism: {tensor: 4}"),
    ),
    Broken(
        "misplaced-engine-flag",
        BASE + "gpu_memory_utilization: 0.8\n",
        6,
        ("`gpu_memory_utilization`", "engine: {mem_fraction: 0.8}"),
    ),
    # ----- wrong types ------------------------------------------------------------------
    Broken(
        "count-word",
        "model: glm-4.5\ngpus:\n  type: H200\n  count: four\n",
        4,
        ("whole number", "'four'"),
    ),
    Broken(
        "count-fraction",
        "model: glm-4.5\ngpus:\n  type: H200\n  count: 4.5\n",
        4,
        ("whole number", "4.5"),
    ),
    Broken(
        "count-bool",
        "model: glm-4.5\ngpus:\n  type: H200\n  count: true\n",
        4,
        ("whole number", "true"),
    ),
    Broken("context-suffix", BASE + "context_length: 32k\n", 6, ("whole number", "'32k'", "32768")),
    Broken("bool-word", BASE + "parallelism:\n  dp_attention: maybe\n", 7, ("true or false",)),
    Broken(
        "gpus-list",
        "model: glm-4.5\ngpus: [H200, 4]\n",
        2,
        ("`gpus` must be a mapping", "{type: H200, count: 4}"),
    ),
    Broken(
        "args-list", BASE + "engine:\n  args: [a, b]\n", 7, ("`engine.args` must be a mapping",)
    ),
    Broken(
        "model-number",
        "model: 4.5\ngpus: 4xH200\n",
        1,
        ("`model` must be a string", 'model: "4.5"'),
    ),
    # ----- missing fields ----------------------------------------------------------------
    Broken(
        "missing-gpus",
        "model: glm-4.5\nprecision: fp8\n",
        1,
        ("`gpus`", "is missing", "gpus: {type: H200, count: 4}"),
    ),
    Broken(
        "missing-count",
        "model: glm-4.5\ngpus:\n  type: H200\n",
        2,
        ("`count` under `gpus`", "count: 4"),
    ),
    Broken(
        "missing-type",
        "model: glm-4.5\ngpus:\n  count: 4\n",
        2,
        ("`type` under `gpus`", "GPU type"),
    ),
    Broken(
        "missing-model", "precision: fp8\ngpus: 4xH200\n", 1, ("no model given", "model: glm-4.5")
    ),
    Broken(
        "model-and-config",
        "model: glm-4.5\nmodel_config: ./config.json\ngpus: 4xH200\n",
        2,
        ("both `model` and `model_config`",),
    ),
    # ----- bad enum values ----------------------------------------------------------------
    Broken(
        "precision-typo",
        "model: glm-4.5\nprecision: fp9\ngpus: 4xH200\n",
        2,
        ("`precision: fp9`", "`fp8`"),
    ),
    Broken("engine-typo", BASE + "engine: sglan\n", 6, ("sglan", "`sglang`")),
    Broken(
        "policy-typo", BASE + "router:\n  policy: roundrobin\n", 7, ("roundrobin", "`round_robin`")
    ),
    Broken("kv-dtype", BASE + "kv_cache_dtype: fp4\n", 6, ("fp4", "auto, bf16, fp16, fp8")),
    Broken(
        "spec-algorithm",
        BASE + "speculative:\n  algorithm: medusa\n",
        7,
        ("medusa", "none, mtp, eagle"),
    ),
    # ----- unknown catalog names ------------------------------------------------------------
    Broken(
        "unknown-model",
        "model: glm-4.8\ngpus: 4xH200\n",
        1,
        ("unknown model `glm-4.8`", "`glm-4.7`"),
    ),
    Broken(
        "unknown-gpu", "model: glm-4.5\ngpus:\n  type: H20O\n  count: 4\n", 3, ("`H20O`", "`H200`")
    ),
    Broken("unknown-gpu-shorthand", "model: glm-4.5\ngpus: 4xH2000\n", 2, ("`h2000`", "`H200`")),
    # ----- impossible parallelism ------------------------------------------------------------
    Broken(
        "tp-heads-explicit",
        "model: glm-4.5\ngpus:\n  type: H200\n  count: 5\nparallelism:\n  tensor: 5\n",
        6,
        ("tensor parallel 5", "96 attention heads"),
    ),
    Broken(
        "tp-heads-default",
        "model: glm-4.5\ngpus:\n  type: H200\n  count: 5\n",
        4,
        ("defaults to all 5 GPUs", "`gpus.count`"),
    ),
    Broken(
        "product",
        "model: glm-4.5\ngpus:\n  type: H200\n  count: 8\nparallelism:\n  tensor: 4\n",
        6,
        ("4 x 1 x 1 = 4", "gpus.count = 8"),
    ),
    Broken(
        "ep-experts",
        "model: glm-4.5\ngpus:\n  type: H200\n  count: 8\nparallelism:\n  expert: 3\n",
        6,
        ("expert parallel 3", "160 routed experts", "[1, 2, 4, 8]"),
    ),
    Broken(
        "ep-dense", "model: glm-4-9b\ngpus: 2xA100\nparallelism:\n  expert: 2\n", 4, ("is dense",)
    ),
    Broken(
        "pp-layers",
        "model: glm-4.5-air\ngpus:\n  type: H200\n  count: 48\n"
        "parallelism:\n  tensor: 1\n  pipeline: 48\n",
        7,
        ("pipeline 48", "46 layers"),
    ),
    Broken(
        "nodes-too-few",
        "model: glm-4.5\ngpus:\n  type: H100\n  count: 16\n  nodes: 1\n",
        5,
        ("1 node(s) of 8 GPUs", "`gpus.nodes: 2`"),
    ),
    Broken(
        "nodes-uneven",
        "model: glm-4.5\ngpus:\n  type: H100\n  count: 16\n  nodes: 3\n",
        5,
        ("3 node(s)", "split evenly"),
    ),
    # ----- limits ------------------------------------------------------------------------
    Broken("context-too-long", BASE + "context_length: 200000\n", 6, ("200000", "131072")),
    Broken(
        "count-negative",
        "model: glm-4.5\ngpus:\n  type: H200\n  count: -4\n",
        4,
        ("-4", "at least 1"),
    ),
    Broken("mem-fraction", BASE + "engine:\n  mem_fraction: 1.5\n", 7, ("1.5", "less than 1.0")),
    Broken("port", BASE + "router:\n  port: 70000\n", 7, ("70000", "at most 65535")),
    Broken("max-num-seqs", BASE + "max_num_seqs: 0\n", 6, ("`max_num_seqs` is 0", "at least 1")),
    Broken(
        "acceptance", BASE + "speculative:\n  acceptance_length: 0.5\n", 7, ("0.5", "more than 1.0")
    ),
    # ----- replicas ------------------------------------------------------------------------
    Broken(
        "replicas-min-max",
        BASE + "replicas:\n  min: 3\n  max: 2\n",
        7,
        ("replicas.min 3", "replicas.max 2"),
    ),
    Broken(
        "replicas-initial",
        BASE + "replicas:\n  min: 1\n  max: 2\n  initial: 5\n",
        9,
        ("initial 5", "1..2"),
    ),
    Broken("replicas-negative", BASE + "replicas: -1\n", 6, ("`replicas.min` is -1",)),
    # ----- speculative ------------------------------------------------------------------------
    Broken(
        "mtp-missing",
        "model: chatglm2-6b\ngpus: 1xA100\nspeculative:\n  algorithm: eagle\n",
        4,
        ("no MTP layer", "algorithm: none"),
    ),
    Broken(
        "draft-tokens",
        BASE + "speculative:\n  num_draft_tokens: 9\n",
        7,
        ("num_draft_tokens 9", "at most 4"),
    ),
    Broken(
        "draft-tokens-vllm",
        BASE + "engine: vllm\nspeculative:\n  num_steps: 1\n  num_draft_tokens: 3\n",
        9,
        ("num_draft_tokens 3", "at most 1"),
    ),
    # ----- names and precision ----------------------------------------------------------------
    Broken("bad-name", "name: My_Model\n" + BASE, 1, ("`My_Model`", "lowercase")),
    Broken("name-too-long", f"name: {'a' * 70}\n" + BASE, 1, ("not a valid deployment name", "63")),
    Broken(
        "fp8-on-base",
        "model: glm-4.5-base\nprecision: fp8\ngpus: 8xH200\n",
        2,
        ("GLM-4.5-Base", "precision: bf16", "model: glm-4.5"),
    ),
    Broken(
        "int4-on-glm45",
        "model: glm-4.5\nprecision: int4\ngpus: 8xH200\n",
        2,
        ("int4", "smaller GLM models", "precision: fp8"),
    ),
    Broken(
        "int8-on-air",
        "model: glm-4.5-air\nprecision: int8\ngpus: 2xH200\n",
        2,
        ("int8", "smaller GLM models"),
    ),
    # ----- YAML itself ----------------------------------------------------------------------
    Broken(
        "yaml-indent", "model: glm-4.5\ngpus:\n  type: H200\n   count: 4\n", 4, ("not valid YAML",)
    ),
    Broken("yaml-bracket", "model: glm-4.5\nprecision: [fp8\n", 3, ("not valid YAML",)),
    Broken("yaml-tab", "model: glm-4.5\n\tprecision: fp8\n", 2, ("not valid YAML", "'\\t'")),
    Broken("empty", "", None, ("the file is empty",)),
    Broken("comments-only", "# a topology, some day\n", None, ("the file is empty",)),
    Broken("list", "- model: glm-4.5\n- gpus: 4xH200\n", 1, ("mapping", "not a list")),
    Broken("scalar", "glm-4.5\n", 1, ("mapping", "not a single string")),
    Broken(
        "duplicate-key",
        "model: glm-4.5\nmodel: glm-4.5-air\ngpus: 4xH200\n",
        2,
        ("`model` is given twice", "lines 1 and 2"),
    ),
    # ----- a local model_config -------------------------------------------------------------------
    Broken(
        "config-missing",
        "model_config: ./nope.json\ngpus: 4xH200\n",
        1,
        ("nope.json", "does not exist"),
    ),
    Broken(
        "config-not-json",
        "gpus: 4xH200\nmodel_config: config.json\n",
        2,
        ("not valid JSON",),
        files={"config.json": "{hidden_size: 1"},
    ),
    Broken(
        "config-unknown-type",
        "gpus: 4xH200\nmodel_config: config.json\n",
        2,
        ("model_type `bert`",),
        files={"config.json": '{"model_type": "bert", "hidden_size": 768}'},
    ),
]


def _write(case: Broken, tmp_path: Path) -> Path:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / f"{case.id}.yaml"
    path.write_text(case.text)
    return path


def check_paragraph(message: str, path: Path, case: Broken) -> None:
    paragraphs = message.strip().split("\n\n")
    assert len(paragraphs) == 1, f"one mistake should give one paragraph:\n{message}"
    paragraph = paragraphs[0]
    assert "\n" not in paragraph, paragraph
    where = f"{path}:{case.line}:" if case.line else f"{path}:"
    assert paragraph.startswith(where), f"expected {where!r} first:\n{paragraph}"
    assert "To fix:" in paragraph, paragraph
    for needle in case.says:
        assert needle in paragraph, f"{needle!r} missing from:\n{paragraph}"
    for leak in LEAKS:
        assert leak not in paragraph, f"{leak!r} leaked into:\n{paragraph}"


def test_there_are_at_least_thirty_distinct_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 30
    assert len({c.text + str(c.files) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_broken_spec_gets_one_paragraph_with_line_and_fix(case: Broken, tmp_path: Path) -> None:
    path = _write(case, tmp_path)
    with pytest.raises(SpecError) as caught:
        load_topology(path)
    check_paragraph(str(caught.value), path, case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cli_validate_exits_2_without_traceback(
    case: Broken, tmp_path: Path, glmctl: Callable[..., CliResult]
) -> None:
    path = _write(case, tmp_path)
    result = glmctl("validate", path)
    assert result.code == 2, result
    assert "Traceback" not in result.text
    problem = re.sub(r"^✗ ", "", result.err.strip().splitlines()[0])
    check_paragraph(problem, path, case)
    assert "failed validation" in result.err


def test_several_mistakes_give_one_paragraph_each(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("model: glm-4.5\ngpus:\n  type: H200\n  cuont: 4\nrouter:\n  polcy: x\n")
    with pytest.raises(SpecError) as caught:
        load_topology(path)
    paragraphs = str(caught.value).split("\n\n")
    assert [p.split(": ", 1)[0] for p in paragraphs] == [f"{path}:4", f"{path}:6"]
    assert all("To fix:" in p for p in paragraphs)


def test_resolve_problems_are_all_reported_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "model: glm-4.5\ngpus:\n  type: H200\n  count: 8\nparallelism:\n  tensor: 4\n"
        "context_length: 999999\n"
    )
    with pytest.raises(SpecError) as caught:
        load_topology(path)
    lines = [int(p.split(":")[1]) for p in str(caught.value).split("\n\n")]
    assert lines == sorted(lines) and len(lines) == 2


def test_show_of_a_broken_spec_prints_the_same_paragraph(
    tmp_path: Path, glmctl: Callable[..., CliResult]
) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(BASE + "context_lenght: 32768\n")
    result = glmctl("show", path)
    assert result.code == 2
    assert result.err.startswith(f"error: {path}:6: unknown field `context_lenght`")
    assert "Traceback" not in result.text


def test_brackets_in_user_values_survive_console_markup(
    tmp_path: Path, glmctl: Callable[..., CliResult]
) -> None:
    path = tmp_path / "markup.yaml"
    path.write_text('name: "[bold]x"\n' + BASE)
    for command in ("validate", "show"):
        result = glmctl(command, path)
        assert result.code == 2 and "`[bold]x`" in result.err, result


def test_debug_shows_the_traceback(tmp_path: Path, glmctl: Callable[..., CliResult]) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(BASE + "context_lenght: 32768\n")
    for command in ("validate", "show"):
        result = glmctl("--debug", command, path)
        assert result.code == 2
        assert "Traceback (most recent call last)" in result.err
        assert "SpecError" in result.err
