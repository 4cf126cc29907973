"""`glmctl render FILE --target ray|k8s`: Ray Serve config or KubeRay manifests from a plan.

`--target ray` writes deployments/<name>.yaml; `--target k8s` writes manifests/<name>/
(with a kustomization.yaml; files of an older render that the new one lacks are removed).
Both render the plan for the topology's own nodes (render.ray_serve.reference_plan).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from controlplane.cli.options import console
from controlplane.errors import UserError

File = Annotated[Path, typer.Argument(help="A topology YAML file.", show_default=False)]
TARGETS = {"ray": Path("deployments"), "k8s": Path("manifests")}
HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")


def render_cmd(
    file: File,
    target: Annotated[
        str, typer.Option("--target", help="ray (Ray Serve config) or k8s (KubeRay manifests).")
    ] = "ray",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write into (default: deployments/ or manifests/)."),
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="k8s: image of the Ray pods (glmctl + engine).")
    ] = None,
    router_image: Annotated[
        str | None, typer.Option("--router-image", help="k8s: image of the router pods.")
    ] = None,
    external_redis: Annotated[
        str | None,
        typer.Option(
            "--external-redis",
            help="k8s: HOST:PORT of a Redis to use (no StatefulSet); rediss://HOST:PORT for TLS.",
        ),
    ] = None,
    models_claim: Annotated[
        str | None,
        typer.Option("--models-claim", help="k8s: an existing PVC holding the checkpoint."),
    ] = None,
) -> None:
    """Render a topology's Ray Serve config (deployments/<name>.yaml) or KubeRay manifests
    (manifests/<name>/, apply with `kubectl apply -k`)."""
    from controlplane.render.ray_serve import reference_plan
    from controlplane.spec import load_topology

    if target == "kuberay":
        target = "k8s"
    if target not in TARGETS:
        raise UserError(
            f"unknown render target `{target}`.",
            fix="use `--target ray` (Ray Serve config) or `--target k8s` (KubeRay manifests).",
        )
    tls = external_redis is not None and external_redis.startswith("rediss://")
    address = external_redis.removeprefix("rediss://") if external_redis else None
    if address is not None and not HOST_PORT.match(address):
        raise UserError(
            f"`--external-redis {external_redis}` is not HOST:PORT (or rediss://HOST:PORT).",
            fix="pass the Redis address without password, e.g. redis.internal:6379; the"
            " password goes in the Secret <name>-redis.",
        )
    from controlplane.render.k8s.common import K8sOptions

    options = K8sOptions(image, router_image, address, models_claim, redis_tls=tls)
    topology = load_topology(file)
    deployment = reference_plan(topology)
    folder = out or TARGETS[target]
    files = _render(deployment, target, _source(file), options)
    written = _write(folder, files, deployment.name if target == "k8s" else None)
    console.print(f"wrote {written} (plan {deployment.digest()})")
    if target == "k8s":
        from controlplane.render.k8s import fabric_notes

        for note in fabric_notes(deployment):
            console.print(note)


def _render(deployment: object, target: str, source: str, options: Any) -> dict[str, str]:
    from controlplane.planner.models import DeploymentPlan
    from controlplane.render.ray_serve import render_yaml

    assert isinstance(deployment, DeploymentPlan)
    if target == "ray":
        return {f"{deployment.name}.yaml": render_yaml(deployment, source)}
    from controlplane.render.k8s import manifest_files, observability_catalogue

    rule_files, dashboards = observability_catalogue(deployment)
    return manifest_files(deployment, source, options, rule_files, dashboards)


def _write(folder: Path, files: dict[str, str], subfolder: str | None) -> Path:
    """Write `files` into `folder` (or `folder/subfolder`, replacing what an older render
    left there); returns the file or folder written."""
    where = folder / subfolder if subfolder else folder
    try:
        where.mkdir(parents=True, exist_ok=True)
        if subfolder:
            for stale in where.glob("*.yaml"):
                if stale.name not in files:
                    stale.unlink()
        for name, text in files.items():
            (where / name).write_text(text)
    except OSError as exc:
        raise UserError(
            f"cannot write into {where}: {exc.strerror or exc}.",
            fix="pass `--out` a folder you can write to.",
        ) from exc
    return where if subfolder else where / next(iter(files))


def _source(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd()))
    except ValueError:
        return file.name


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    app.command("render")(render_cmd)
