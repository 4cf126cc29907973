"""Line numbers from the YAML node tree, typo suggestions, and the parse-only API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.errors import SpecError
from controlplane.spec.loader import LineIndex, load_spec, parse_spec, suggest
from controlplane.spec.messages import Problem, without_masked

TEXT = """# comment
model: glm-4.5
gpus:
  type: H200
  count: 4
parallelism: {tensor: 4}
"""


def test_line_index_points_at_keys_and_values() -> None:
    lines = LineIndex(yaml.compose(TEXT, Loader=yaml.SafeLoader))
    assert lines.line(("model",)) == 2
    assert lines.line(("gpus", "count")) == 5
    assert lines.line(("gpus",), on_key=True) == 3
    assert lines.line(("parallelism", "tensor")) == 6
    # A field that is not in the file is reported at its nearest written parent.
    assert lines.line(("gpus", "nodes")) == 3
    assert lines.line(("router", "policy")) == 2


def test_duplicate_keys_are_found_at_any_depth() -> None:
    lines = LineIndex(yaml.compose("a: 1\nb:\n  c: 1\n  c: 2\n", Loader=yaml.SafeLoader))
    assert lines.duplicates == [(("b", "c"), 3, 4)]


def test_suggest() -> None:
    assert suggest("tensr", ["tensor", "pipeline"]) == "tensor"
    assert suggest("pipe", ["tensor", "pipeline"]) == "pipeline"
    assert suggest("zzz", ["tensor", "pipeline"]) is None


def test_a_typo_masks_the_missing_field_it_stands_for() -> None:
    typo = Problem(("gpus", "tpye"), "unknown", "rename", renamed_to="type")
    missing = Problem(("gpus", "type"), "missing", "add", missing=True)
    other = Problem(("gpus", "count"), "missing", "add", missing=True)
    assert without_masked([typo, missing, other]) == [typo, other]


def test_parse_spec_is_pure_and_names_the_deployment() -> None:
    spec = parse_spec(TEXT, "x.yaml", default_name="from-file")
    assert spec.name == "from-file"
    assert parse_spec("name: given\n" + TEXT, default_name="from-file").name == "given"


def test_a_binary_file_is_a_spec_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xf8\xff\x00model: glm-4.5\n")
    with pytest.raises(SpecError, match=r"not a UTF-8 text file.*To fix"):
        load_spec(path)


def test_slo_durations_accept_units_and_numbers() -> None:
    from controlplane.spec.models import TopologySpec

    spec = TopologySpec.model_validate(
        {"model": "glm-4.5", "gpus": "4xH200", "slo": {"ttft_p99": "500ms", "itl_p99": 0.04}}
    )
    assert spec.slo.ttft_p99 == pytest.approx(0.5)
    assert spec.slo.itl_p99 == pytest.approx(0.04)
    assert TopologySpec.model_validate({"model": "glm-4.5", "gpus": "4xH200"}).slo.ttft_p99 == 2.0
    with pytest.raises(ValueError, match="duration such as 2s"):
        TopologySpec.model_validate(
            {"model": "glm-4.5", "gpus": "4xH200", "slo": {"ttft_p99": "x"}}
        )
