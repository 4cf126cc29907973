"""The images the Kubernetes manifests name, and how `make images` builds them (pure, but
for `main`).

Tags derive from the package version and the engine version the command builders target
(spec/resolve.py DEFAULT_ENGINE_VERSION), exactly as common.default_ray_image names them in
the manifests; the engine images start from each engine's official image.
`python -m controlplane.render.k8s.images [--tool docker|podman]` prints one build command
per image (what `make images` runs).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass

from controlplane import __version__ as GLMCTL_VERSION
from controlplane.engines.registry import PROFILES
from controlplane.render.k8s.common import default_router_image
from controlplane.spec.models import EngineKind
from controlplane.spec.resolve import DEFAULT_ENGINE_VERSION

ROUTER_DOCKERFILE = "docker/router.Dockerfile"
ENGINE_DOCKERFILE = "docker/engine.Dockerfile"


@dataclass(frozen=True)
class ImageBuild:
    tag: str
    dockerfile: str
    base: str | None = None  # BASE_IMAGE build argument

    def command(self, tool: str = "docker") -> list[str]:
        args = [tool, "build", "-f", self.dockerfile, "-t", self.tag]
        if self.base:
            args += ["--build-arg", f"BASE_IMAGE={self.base}"]
        return [*args, "."]


def engine_image(engine: EngineKind, version: str) -> str:
    """`glmctl-<engine>:<glmctl>-<engine version>` (common.default_ray_image's scheme)."""
    return f"glmctl-{engine.value}:{GLMCTL_VERSION}-{version}"


def image_builds() -> list[ImageBuild]:
    """The router image and one engine image per engine with an official image."""
    builds = [ImageBuild(default_router_image(), ROUTER_DOCKERFILE)]
    for profile in PROFILES:
        if not profile.official_image:
            continue
        version = DEFAULT_ENGINE_VERSION[profile.kind]
        base = profile.official_image.format(version=version)
        builds.append(ImageBuild(engine_image(profile.kind, version), ENGINE_DOCKERFILE, base))
    return builds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane.render.k8s.images")
    parser.add_argument("--tool", default="docker", help="docker or podman")
    args = parser.parse_args(argv)
    for build in image_builds():
        print(shlex.join(build.command(args.tool)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
