"""Write the generated reference pages of the docs site (`python -m ops.docs.gen`).

Pages, each from the code that defines what it documents:
- docs/reference/topology.md: every topology field (the pydantic schema, with the hints of
  glmctl's own error messages);
- docs/reference/cli.md: every command and option (the typer app's click commands);
- docs/reference/metrics.md: the metrics catalogue (controlplane/observe/catalog.py);
- docs/reference/alerts/: one page per alert (controlplane/observe) with its runbook.

`--check` writes nothing and exits 1 when a committed page differs from a fresh generation
(tests/unit/docs/test_generated_pages.py does the same in `make test`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ops.docs.ref_cli import cli_page
from ops.docs.ref_observe import alert_pages, metrics_page
from ops.docs.ref_topology import topology_page

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Folders whose every file is generated: a page left there from a removed alert is stale.
GENERATED_DIRS = ("reference/alerts",)


def generate() -> dict[str, str]:
    """Every generated page: path under docs/ -> markdown (pure: reads only the code)."""
    pages = {
        "reference/topology.md": topology_page(),
        "reference/cli.md": cli_page(),
        "reference/metrics.md": metrics_page(),
    }
    pages.update(alert_pages())
    return pages


def stale(docs: Path = DOCS) -> list[str]:
    """Generated pages that differ from the committed ones, or are missing or left over."""
    pages = generate()
    out = [p for p, text in pages.items() if _read(docs / p) != text]
    for folder in GENERATED_DIRS:
        for path in sorted((docs / folder).glob("*.md")):
            relative = path.relative_to(docs).as_posix()
            if relative not in pages:
                out.append(relative)
    return out


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def write(docs: Path = DOCS) -> list[str]:
    """Write every page (and drop left-over pages in generated folders); the paths changed."""
    changed = stale(docs)
    pages = generate()
    for relative in changed:
        path = docs / relative
        if relative in pages:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(pages[relative])
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.docs.gen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="Only report stale pages.")
    opts = parser.parse_args(argv)
    if opts.check:
        changed = stale()
        for relative in changed:
            print(f"stale: docs/{relative} (run `python -m ops.docs.gen`)")
        return 1 if changed else 0
    for relative in write():
        print(f"wrote docs/{relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
