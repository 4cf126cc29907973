"""Offline validators for rendered manifests: Kubernetes core objects (kubernetes-validate,
strict, 1.30) and custom resources (their CRD's openAPIV3Schema, made strict)."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parents[2] / "data" / "crds"
KUBERNETES_VERSION = "1.30.0"
CRD_FILES = {
    "RayService": "ray.io_rayservices.yaml.gz",
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml.gz",
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml.gz",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml.gz",
}


def _strict(node: Any) -> Any:
    """Unknown fields are errors (the API server would prune them silently): every object
    schema with `properties` and no rule for other keys gets `additionalProperties: false`.
    Go's `(?i)` inside a pattern is moved to its front for Python's `re`."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    pattern = out.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern and not pattern.startswith("(?i)"):
        out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
    return out


@cache
def crd_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    """A validator of the CRD's schema (checked against its metaschema once)."""
    schema = crd_schema(kind, api_version)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def crd_schema(kind: str, api_version: str) -> dict[str, Any]:
    crd = yaml.safe_load(gzip.decompress((CRDS / CRD_FILES[kind]).read_bytes()))
    version = api_version.rsplit("/", 1)[-1]
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(entry["schema"]["openAPIV3Schema"])
    # apiVersion/kind/metadata are the API server's; the CRD leaves metadata open.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def validate(obj: dict[str, Any]) -> None:
    """Raise if `obj` is not a valid object of its kind."""
    kind = obj["kind"]
    if kind in CRD_FILES:
        crd_validator(kind, obj["apiVersion"]).validate(obj)
        return
    import kubernetes_validate

    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
