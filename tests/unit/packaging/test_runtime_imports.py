"""`make run` installs only the core and `serve` extras: the package must not import more.

(A demo that imported httpx, a dev-only dependency, once broke `make run` on a fresh machine.)
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

from controlplane.doctor.extras import import_name

REPO = Path(__file__).resolve().parents[3]
# The `loadtest` extra, imported only inside controlplane/loadtest/ (and lazily there).
LOADTEST_ONLY = {"locust", "gevent", "requests", "matplotlib"}
# Imported only by code that runs inside an engine's own venv (the tiny-checkpoint writer).
ENGINE_VENV_ONLY = {"numpy", "tokenizers", "torch", "safetensors", "vllm", "sglang"}
# The `ops` extra, imported only by the modules behind `glmctl dashboards` (which imports
# them inside its functions and names the extra when they are missing).
OPS_ONLY = {
    "controlplane/observe/dashboards.py": {"grafana_foundation_sdk"},
    "controlplane/observe/grafana.py": {"grafana_client"},
    # The `tokenizer` extra: the router's HF tokenizer for precise_prefix, imported inside
    # its functions (missing: the policy logs why and falls back).
    "controlplane/router/kv_tokens.py": {"tokenizers", "jinja2", "huggingface_hub"},
}


def _allowed_imports() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + extras["serve"] + extras["http"]
    names: set[str] = set()
    for requirement in requirements:
        dist = requirement.split(";")[0].split("[")[0].split(">")[0].split("<")[0]
        dist = dist.split("=")[0].strip().lower()
        names.add(import_name(dist))  # the table `glmctl doctor` reads too
    return names | {"controlplane", "pydantic_core", "typing_extensions", "aiohttp", "hiredis"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_package_imports_only_core_and_serve_dependencies() -> None:
    allowed = _allowed_imports() | set(sys.stdlib_module_names) | ENGINE_VENV_ONLY
    loadtest = REPO / "controlplane" / "loadtest"
    offenders = {}
    for path in (REPO / "controlplane").rglob("*.py"):
        name = str(path.relative_to(REPO))
        extra = LOADTEST_ONLY if path.is_relative_to(loadtest) else set()
        if found := _imports(path) - allowed - extra - OPS_ONLY.get(name, set()):
            offenders[name] = sorted(found)
    assert offenders == {}, f"imports outside the core + serve extras: {offenders}"


def test_cli_imports_no_loadtest_dependency() -> None:
    """`glmctl` starts without the loadtest extra: Locust and matplotlib load on use only."""
    import subprocess

    code = (
        "import sys, controlplane.cli.main, controlplane.loadtest.report;"
        " print(sorted(m for m in ('locust', 'gevent', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
