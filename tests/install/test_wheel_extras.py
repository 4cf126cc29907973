"""Every extra from the built wheel, as a new user meets it: no traceback anywhere.

In each fresh venv: every command's `--help`, usage errors, a bad file, the commands the
extra enables (they succeed), and the commands it does not enable (they name the extra to
install). Everything runs from a folder outside the repository, so whatever a command reads
at run time must be package data.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.install.conftest import EXTRAS, REPO, Dists, Installed
from tests.unit.catalog.configs import GLM_45_AIR

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]
TOPOLOGY = "glm45-fp8.yaml"
# A result file `vllm bench serve` saved (tests/unit/capacity/test_calibrate.py).
BENCH_RESULT = str(REPO / "tests" / "data" / "calibrate" / "vllm-0.32.0-c1.json")
BROKEN = "model: glm-4.5\nprecision: fp8\ngpus:\n  type: H200\n  count: 4\ncontext_lenght: 32768\n"
# Commands that need nothing but the core install.
CORE_COMMANDS = (
    ("validate", TOPOLOGY),
    ("show", TOPOLOGY, "-o", "json"),
    ("schema",),
    ("models",),
    ("gpus",),
    ("capacity", TOPOLOGY),
    ("calibrate", TOPOLOGY, BENCH_RESULT),
    ("capacity", "--model", "glm-4.5-air", "--precision", "fp8", "--gpu", "h200", "--gpus", "1"),
    ("render", TOPOLOGY, "--out", "rendered"),
    ("plan", TOPOLOGY),
    ("status",),
    ("capacity", "--model", "GLM-4.5-Air", "--precision", "fp8", "--gpu", "h200", "--gpus", "1",
     "--context", "16384"),
    ("init", "--model", "glm-4.5-air", "--precision", "fp8", "--gpu", "H200", "--gpus", "1",
     "--context", "16384", "--batch", "8", "--engine", "sglang", "--out", "new.yaml", "--force"),
)  # fmt: skip
# Commands of an extra, and the extra they name when it is missing.
NEEDS = {
    ("sim", "serve", TOPOLOGY): "http",
    ("router", "endpoints", "--redis-url", "redis://127.0.0.1:1/0"): "serve",
    ("apply", TOPOLOGY, "-y"): "serve",
}
ENABLED = {"serve": {"sim", "router", "apply"}, "dev": {"sim", "router", "apply"}}


def _no_traceback(result: subprocess.CompletedProcess[str], argv: tuple[str, ...]) -> None:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, f"glmctl {' '.join(argv)} printed a traceback:\n{text}"


def _command_paths(env: Installed) -> list[tuple[str, ...]]:
    """Every command and sub-command of the installed glmctl, from its own click tree."""
    code = (
        "import json, typer; from controlplane.cli.main import app\n"
        "def walk(cmd, path):\n"
        "    subs = getattr(cmd, 'commands', {})\n"
        "    return [p for n in subs for p in walk(subs[n], path + [n])] if subs else [path]\n"
        "print(json.dumps(walk(typer.main.get_group(app), [])))\n"
    )
    result = subprocess.run([str(env.python), "-c", code], cwd=env.workdir, env=env.env,
                            capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return [tuple(p) for p in json.loads(result.stdout)]


def test_wheel_and_sdist_carry_the_package(dists: Dists) -> None:
    names = zipfile.ZipFile(dists.wheel).namelist()
    assert "controlplane/cli/main.py" in names
    assert "controlplane/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "topologies/"))]
    with tarfile.open(dists.sdist) as sdist:
        members = sdist.getnames()
    assert any(m.endswith("controlplane/cli/main.py") for m in members)
    assert any(m.endswith("pyproject.toml") for m in members)


def test_every_data_file_of_the_package_is_in_the_wheel(dists: Dists) -> None:
    """Model configs, templates, schemas, dashboards: what the package reads at run time."""
    names = set(zipfile.ZipFile(dists.wheel).namelist())
    data = {
        str(path.relative_to(REPO))
        for path in (REPO / "controlplane").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".py", ".pyc")
    }
    assert data - names == set()


@pytest.mark.parametrize("extra", EXTRAS)
def test_every_command_of_the_extra_without_a_traceback(
    extra: str, install: Callable[[str], Installed]
) -> None:
    env = install(extra)
    shutil.copy(REPO / "topologies" / TOPOLOGY, env.workdir / TOPOLOGY)
    (env.workdir / "broken.yaml").write_text(BROKEN)
    (env.workdir / "GLM-4.5-Air").mkdir(exist_ok=True)  # a local config, as downloaded
    (env.workdir / "GLM-4.5-Air" / "config.json").write_text(json.dumps(GLM_45_AIR))
    version = env.run("--version")
    assert version.returncode == 0 and version.stdout.startswith("glmctl "), version.stderr
    helps = [(*path, "--help") for path in [(), *_command_paths(env)]]
    env.run("--help")  # compiles the bytecode once, before two processes at a time run
    with ThreadPoolExecutor(max_workers=2) as pool:  # CI's two cores
        results = list(pool.map(lambda argv: (argv, env.run(*argv)), helps + list(CORE_COMMANDS)))
    for argv, result in results:
        _no_traceback(result, argv)
        assert result.returncode == 0, f"[{extra}] glmctl {' '.join(argv)}: {result.stderr}"
    for argv, needed in NEEDS.items():
        if argv[0] in ENABLED.get(extra, set()):
            continue  # the serve tests below run these for real
        result = env.run(*argv)
        _no_traceback(result, argv)
        assert result.returncode == 2, f"[{extra}] glmctl {' '.join(argv)}: {result.stderr}"
        assert f"pip install 'glmctl[{needed}]'" in result.stderr, result.stderr
    manifests = env.run("render", TOPOLOGY, "--target", "k8s", "--out", "manifests")
    _no_traceback(manifests, ("render", "--target", "k8s"))
    if extra in ("ops", "k8s", "dev"):  # the manifests carry the dashboards (ops)
        kustomization = env.workdir / "manifests" / "glm45-fp8" / "kustomization.yaml"
        assert manifests.returncode == 0 and kustomization.is_file(), manifests.stderr
    else:
        assert manifests.returncode == 2, manifests.stderr
        assert "pip install 'glmctl[ops]'" in manifests.stderr, manifests.stderr
    doctor = env.run("doctor", TOPOLOGY)
    _no_traceback(doctor, ("doctor",))
    ready = extra in ENABLED
    assert doctor.returncode == (0 if ready else 1), doctor.stdout
    assert ("pip install 'glmctl[serve]'" in doctor.stdout) is not ready, doctor.stdout


@pytest.mark.parametrize("extra", EXTRAS)
def test_usage_errors_and_bad_files_are_one_paragraph(
    extra: str, install: Callable[[str], Installed]
) -> None:
    """The old failure: in the core install every usage error printed two tracebacks."""
    env = install(extra)
    (env.workdir / "broken.yaml").write_text(BROKEN)
    cases = {
        ("capacity", "--batch", "abc"): "Invalid value for '--batch'",
        ("validate",): "Missing argument",
        ("valdate", "x.yaml"): "Did you mean 'validate'",
        ("calibrate", TOPOLOGY, "missing.json"): "cannot read missing.json",
        ("validate", "broken.yaml"): "unknown field `context_lenght`",
        ("show", "missing.yaml"): "missing.yaml",
        ("capacity", "--model", "glm-9"): "glm-9",
    }
    for argv, expected in cases.items():
        result = env.run(*argv)
        _no_traceback(result, argv)
        assert result.returncode == 2, f"glmctl {' '.join(argv)}: {result.stderr}"
        assert expected in result.stderr, result.stderr
        assert len(result.stderr.strip().split("\n\n")) <= 3, result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_serve_extra_runs_a_simulated_engine(install: Callable[[str], Installed]) -> None:
    env = install("serve")
    shutil.copy(REPO / "topologies" / TOPOLOGY, env.workdir / TOPOLOGY)
    port = _free_port()
    argv = [str(env.venv / "bin" / "glmctl"), "sim", "serve", TOPOLOGY, "--port", str(port)]
    process = subprocess.Popen(argv, cwd=env.workdir, env=env.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline, models = time.monotonic() + 60, None
        while models is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    models = json.loads(r.read())
            except OSError:
                time.sleep(0.2)
        assert models is not None, process.stderr.read() if process.stderr else ""
        assert models["data"][0]["id"]
    finally:
        process.terminate()
        process.wait(timeout=30)
