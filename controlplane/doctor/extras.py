"""Which optional extra of glmctl provides a module, read from the installed metadata.

`missing_extra_message(module)` turns a `ModuleNotFoundError` for a third-party module
into one paragraph naming the extra to install (`pip install 'glmctl[serve]'`); `extras_status()`
tells `glmctl doctor` which extras are complete. The requirement table is the installed
distribution's own (`importlib.metadata.requires("glmctl")`), never a copy kept here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import metadata
from importlib.util import find_spec

DIST = "glmctl"
# Distributions whose import name is not their name with `-` and `.` -> `_` (`import_name`;
# also read by tests/unit/packaging/test_runtime_imports.py: one table).
IMPORT_NAMES = {"pyyaml": "yaml", "pyzmq": "zmq", "mkdocs-material": "material"}
# `dev` holds every other extra plus the test tools: never the one to suggest.
META_EXTRAS = ("dev",)
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")


def import_name(dist: str) -> str:
    """The top-level module distribution `dist` installs (pure): `IMPORT_NAMES`' entry, else
    the lowered name with `-` and `.` as `_` (`pydantic-settings` -> `pydantic_settings`)."""
    name = dist.lower()
    return IMPORT_NAMES.get(name, name.replace("-", "_").replace(".", "_"))


def parse_requirements(lines: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Requirement lines of one distribution -> extra -> [(dist name, import name)] (pure).

    The core requirements are under the extra "" . A self-reference (`glmctl[http]` inside
    `serve`) is expanded, so every extra lists all it installs.
    """
    direct: dict[str, list[tuple[str, str]]] = {}
    includes: dict[str, list[str]] = {}
    for line in lines:
        requirement, _, marker = line.partition(";")
        found = _EXTRA_MARKER.search(marker)
        extra = found.group(1) if found else ""
        match = _NAME.match(requirement)
        if match is None:
            continue
        name = match.group(1).lower()
        if name == DIST:
            inner = (match.group(2) or "[]").strip("[]")
            includes.setdefault(extra, []).extend(e.strip() for e in inner.split(",") if e)
            continue
        direct.setdefault(extra, []).append((name, import_name(name)))
    return {extra: _expand(extra, direct, includes, set()) for extra in direct | includes}


def _expand(
    extra: str,
    direct: dict[str, list[tuple[str, str]]],
    includes: dict[str, list[str]],
    seen: set[str],
) -> list[tuple[str, str]]:
    seen.add(extra)
    found = list(direct.get(extra, []))
    for inner in includes.get(extra, []):
        if inner not in seen:
            found += [p for p in _expand(inner, direct, includes, seen) if p not in found]
    return found


@lru_cache(maxsize=1)
def requirement_table() -> dict[str, list[tuple[str, str]]]:
    """The installed glmctl's extras; empty when glmctl runs uninstalled from a checkout."""
    try:
        return parse_requirements(metadata.requires(DIST) or [])
    except metadata.PackageNotFoundError:
        return {}


def extras_providing(module: str, table: dict[str, list[tuple[str, str]]]) -> list[str]:
    """Extras (smallest first, `dev` last) that install the top-level `module` (pure)."""
    top = module.split(".")[0]
    extras = [e for e, pairs in table.items() if e and any(m == top for _, m in pairs)]
    return sorted(extras, key=lambda e: (e in META_EXTRAS, len(table[e]), e))


def missing_extra_message(module: str | None) -> str | None:
    """One paragraph for a missing third-party module of an extra, else None (a bug)."""
    if not module:
        return None
    extras = [e for e in extras_providing(module, requirement_table()) if e not in META_EXTRAS]
    if not extras:
        return None
    first, others = extras[0], extras[1:]
    also = f" (also in {', '.join(f'`{e}`' for e in others)})" if others else ""
    return (
        f"this command needs `{module.split('.')[0]}`, which comes with the `{first}` extra"
        f"{also}, not installed here. To fix: pip install 'glmctl[{first}]'"
        f" (or: uv pip install 'glmctl[{first}]')."
    )


def extras_status() -> dict[str, list[str]]:
    """Each optional extra -> the import names of its requirements missing here."""
    table = requirement_table()
    return {
        extra: [module for _, module in pairs if find_spec(module) is None]
        for extra, pairs in table.items()
        if extra and extra not in META_EXTRAS
    }


def require(*modules: str) -> None:
    """Raise UserError naming the extra when one of `modules` is not importable here.

    Commands call it before they start anything (a server, a keeper process), so a missing
    extra is reported first rather than after half a start.
    """
    from controlplane.errors import UserError

    for module in modules:
        if find_spec(module) is None:
            message = missing_extra_message(module) or (
                f"this command needs the Python module `{module}`, which is not installed."
                f" To fix: pip install {module}."
            )
            raise UserError(message)
