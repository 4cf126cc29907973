"""Commands register lazily: a command imports its own module only, and each module keeps
the promise its COMMAND_MODULES line makes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from controlplane.cli import main
from tests.unit.cli.helpers import CliResult

PROBE = """
import json, sys
sys.argv = ["glmctl", *json.loads(sys.argv[1])]
from controlplane.cli import main
try:
    main.run()
except SystemExit:
    pass
heavy = ("ray", "redis", "pydantic")
loaded = sorted(m for m in sys.modules if m.startswith("controlplane.cli.") or m in heavy)
print("MODULES=" + json.dumps(loaded), file=sys.stderr)
"""


def _loaded(*argv: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    line = next(x for x in result.stderr.splitlines() if x.startswith("MODULES="))
    return list(json.loads(line.removeprefix("MODULES=")))


def test_version_imports_no_command_module_and_no_pydantic() -> None:
    loaded = _loaded("--version")
    assert [
        m for m in loaded if m.startswith("controlplane.cli.") and m != "controlplane.cli.main"
    ] == []
    assert "pydantic" not in loaded


def test_a_command_imports_only_its_own_module() -> None:
    loaded = _loaded("gpus", "-o", "json")
    commands = {m.split(".")[-1] for m in loaded} & set(main.COMMAND_MODULES)
    assert commands == {"spec_cmds"}
    assert "ray" not in loaded and "redis" not in loaded


@pytest.mark.parametrize("module", list(main.COMMAND_MODULES))
def test_each_module_registers_the_commands_its_line_names(module: str) -> None:
    assert set(main._module_commands(module)) == set(main.COMMAND_MODULES[module])


def test_version_works_without_a_command(glmctl: Callable[..., CliResult]) -> None:
    result = glmctl("--version")
    assert result.code == 0
    assert result.out.startswith("glmctl ")


def test_a_mistyped_command_is_one_usage_paragraph(glmctl: Callable[..., CliResult]) -> None:
    result = glmctl("valdate", "x.yaml")
    assert result.code == 2
    assert "No such command 'valdate'. Did you mean 'validate'" in result.err
    assert "Traceback" not in result.text


def test_a_missing_extra_names_it_instead_of_a_traceback(
    glmctl: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sim serve` in the core install: its server module cannot import orjson."""
    monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson -> ModuleNotFoundError
    for name in [m for m in sys.modules if m.startswith("controlplane.engines.sim")]:
        monkeypatch.delitem(sys.modules, name)
    result = glmctl("sim", "serve", "topologies/glm45-fp8.yaml", "--port", "1")
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    assert "pip install 'glmctl[http]'" in result.err


def test_a_module_whose_extra_is_missing_leaves_the_others_working(
    glmctl: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command group importing an extra's package at its top stands in with the fix."""
    real_import = main.importlib.import_module

    def failing(name: str) -> object:
        if name == "controlplane.cli.sim_cmd":
            raise ModuleNotFoundError("No module named 'orjson'", name="orjson")
        return real_import(name)

    monkeypatch.setattr(main.importlib, "import_module", failing)
    listing = glmctl("--help")
    assert listing.code == 0, listing.err
    assert "(not installed)" in listing.out and "capacity" in listing.out
    used = glmctl("sim", "serve", "x.yaml", "--port", "1")
    assert used.code == 2
    assert "pip install 'glmctl[http]'" in used.err
    assert glmctl("gpus", "-o", "json").code == 0
