"""`glmctl capacity --model PATH`: a local config.json (or its folder) instead of a catalog name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.unit.catalog.configs import GLM_45_AIR
from tests.unit.cli.helpers import CliResult

FLAGS = ("--precision", "bf16", "--gpu", "h200", "--gpus", "2", "--context", "32768", "-o", "json")


def _air_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "GLM-4.5-Air"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(GLM_45_AIR))
    return folder


def test_a_config_file_and_its_folder_size_like_the_catalog_model(
    glmctl: Callable[..., CliResult], tmp_path: Path
) -> None:
    folder = _air_folder(tmp_path)
    catalog = glmctl("capacity", "--model", "glm-4.5-air", *FLAGS)
    assert catalog.code == 0, catalog.err
    expected = json.loads(catalog.out)
    for given in (folder / "config.json", folder):
        local = glmctl("capacity", "--model", given, *FLAGS)
        assert local.code == 0, local.err
        report = json.loads(local.out)
        assert report["kv_token_capacity"] == expected["kv_token_capacity"]
        assert report["fits"] == expected["fits"]
        assert [r["weights_bytes"] for r in report["ranks"]] == [
            r["weights_bytes"] for r in expected["ranks"]
        ]


def test_a_config_path_searches_layouts(glmctl: Callable[..., CliResult], tmp_path: Path) -> None:
    folder = _air_folder(tmp_path)
    result = glmctl("capacity", "--model", folder, "--gpu", "h100", "--limit", "2", "-o", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert 1 <= len(rows) <= 2 and rows[0]["gpus"] >= 1


def test_a_missing_config_is_one_paragraph(glmctl: Callable[..., CliResult]) -> None:
    result = glmctl("capacity", "--model", "no/such/config.json", "--gpus", "1")
    assert result.code == 2
    assert "`no/such/config.json` does not exist. To fix:" in result.err
    assert "Traceback" not in result.text
