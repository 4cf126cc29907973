"""The docs site's generated reference pages match the code, and the links alerts carry and
the README gives lead to pages that exist (issue 24)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from controlplane.errors import UserError
from controlplane.observe.alerts import (
    DEFAULT_DOCS_BASE,
    runbook_slug,
    runbook_url,
    with_runbook_base,
)
from controlplane.observe.rules import alert_rules
from controlplane.spec.models import SloSpec
from ops.docs import gen

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs"


def _alert_names() -> list[str]:
    groups = alert_rules(SloSpec())["groups"]
    return [r["alert"] for g in groups for r in g["rules"] if "alert" in r]


def test_committed_pages_match_a_fresh_generation() -> None:
    assert gen.stale(DOCS) == [], "stale docs pages: run `python -m ops.docs.gen` and commit"


def test_a_changed_page_is_reported_stale(tmp_path: Path) -> None:
    """The check can fail: a copy of the docs with one edited and one extra page."""
    for relative, text in gen.generate().items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    assert gen.stale(tmp_path) == []
    (tmp_path / "reference" / "cli.md").write_text("# edited by hand\n")
    (tmp_path / "reference" / "alerts" / "glmctlgone.md").write_text("# GlmctlGone\n")
    assert sorted(gen.stale(tmp_path)) == ["reference/alerts/glmctlgone.md", "reference/cli.md"]
    gen.write(tmp_path)
    assert gen.stale(tmp_path) == []


def test_every_command_option_field_and_alert_has_its_place() -> None:
    pages = gen.generate()
    cli = pages["reference/cli.md"]
    import typer

    from controlplane.cli.main import app

    root = typer.main.get_command(app)
    for name in root.commands:
        command = root.commands[name]
        assert f"## `glmctl {name}`" in cli, name
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                assert param.opts[0] in cli, (name, param.opts)
    topology = pages["reference/topology.md"]
    for field in ("gpus.count", "parallelism.tensor", "router.limits.max_tokens", "slo.ttft_p99"):
        assert f"`{field}`" in topology, field
    for name in _alert_names():
        assert f"reference/alerts/{runbook_slug(name)}.md" in pages, name


def test_runbook_urls_are_the_alert_pages_under_the_site_url() -> None:
    site_url = yaml.safe_load((REPO / "mkdocs.yml").read_text())["site_url"]
    assert site_url == DEFAULT_DOCS_BASE  # the default base is this version's site
    for name in _alert_names():
        page = f"reference/alerts/{runbook_slug(name)}.md"
        # mkdocs' directory URLs: reference/alerts/x.md is served at reference/alerts/x/
        assert runbook_url(name) == site_url + page.removesuffix(".md") + "/"
        assert (DOCS / page).is_file(), page


def test_runbook_base_rewrites_every_alert_and_refuses_a_relative_one() -> None:
    moved = with_runbook_base(alert_rules(SloSpec()), "https://docs.example.internal/glmctl")
    urls = [r["annotations"]["runbook_url"] for g in moved["groups"] for r in g["rules"]
            if "alert" in r]  # fmt: skip
    assert len(urls) == len(_alert_names())
    assert all(re.fullmatch(r"https://docs\.example\.internal/glmctl/reference/alerts/[a-z]+/", u)
               for u in urls), urls  # fmt: skip
    with pytest.raises(UserError, match="not an absolute http"):
        with_runbook_base(alert_rules(SloSpec()), "README.md#")


def test_install_page_names_every_extra() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    page = (DOCS / "getting-started" / "install.md").read_text()
    for extra in extras:
        assert f"pip install '.[{extra}]'" in page, f"install.md has no row for the {extra} extra"


def test_readme_is_short_and_its_docs_links_exist() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert len(links) >= 5
    for link in links:
        assert (REPO / link).is_file(), link
