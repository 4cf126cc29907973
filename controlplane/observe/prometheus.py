"""Prometheus for the embedded default: its config, file-SD target files, rule files, queries.

Pure parts (`prometheus_config`, `file_sd`) build what is written; the I/O parts write it
atomically and only when it changed (Prometheus watches file-SD files, so targets follow
scale up and down without a restart). The process itself (start on 127.0.0.1 with its
storage under the state dir, reload with SIGHUP) is a local server like Redis:
controlplane/local/prometheus_server.py (`binary`, `reload`, `LOOPBACK` re-exported here).
See ../shared/reference/ops-tooling.md for how Prometheus runs here.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.errors import UserError
from controlplane.local.prometheus_server import (
    LOOPBACK,
    READY_TIMEOUT_S,
    binary,
    reload,
    start_prometheus,
)
from controlplane.observe import catalog as cat
from controlplane.observe.rules import alert_rules, recording_rules
from controlplane.spec.models import SloSpec

__all__ = [
    "JOBS",
    "LOOPBACK",
    "READY_TIMEOUT_S",
    "Layout",
    "ScrapeTarget",
    "binary",
    "file_sd",
    "prometheus_config",
    "query",
    "query_range",
    "read_state",
    "reload",
    "rule_files",
    "start",
    "write_rules",
    "write_targets",
]

JOBS = (cat.JOB_ENGINE, cat.JOB_ROUTER, cat.JOB_AGENT)


@dataclass(frozen=True)
class ScrapeTarget:
    """One `/metrics` endpoint and the catalogue's target labels it gets."""

    address: str  # host:port
    job: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """Where the embedded Prometheus keeps its files (all under one directory)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "prometheus.yml"

    @property
    def sd_dir(self) -> Path:
        return self.root / "targets"

    @property
    def rules_dir(self) -> Path:
        return self.root / "rules"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def state(self) -> Path:
        return self.root / "state.json"


def prometheus_config(layout: Layout, scrape_s: float, evaluation_s: float) -> dict[str, Any]:
    """prometheus.yml: one job per target kind, each from its file-SD file."""
    return {
        "global": {
            "scrape_interval": f"{scrape_s:g}s",
            "evaluation_interval": f"{evaluation_s:g}s",
        },
        "rule_files": [str(layout.rules_dir / "*.yaml")],
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_timeout": f"{min(scrape_s, 10):g}s",
                "file_sd_configs": [{"files": [str(layout.sd_dir / f"{job}.json")]}],
            }
            for job in JOBS
        ],
    }


def file_sd(targets: Iterable[ScrapeTarget]) -> dict[str, list[dict[str, Any]]]:
    """Job -> file-SD entries (sorted, so an unchanged registry writes identical files)."""
    out: dict[str, list[dict[str, Any]]] = {job: [] for job in JOBS}
    for target in sorted(targets, key=lambda t: (t.job, t.address)):
        out[target.job].append({"targets": [target.address], "labels": dict(target.labels)})
    return out


def rule_files(slos: Mapping[str, SloSpec]) -> dict[str, dict[str, Any]]:
    """File name -> rule file: shared recording rules, operational alerts, and the SLO rules
    of each running deployment with its own topology's objectives."""
    operations = alert_rules(SloSpec())["groups"][-1]
    files = {"recording.yaml": recording_rules(), "operations.yaml": {"groups": [operations]}}
    for name, slo in sorted(slos.items()):
        files[f"slo-{name}.yaml"] = alert_rules(slo, deployment=name)
    return files


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)  # atomic: Prometheus never reads half a file
    return True


def write_targets(layout: Layout, targets: Iterable[ScrapeTarget]) -> bool:
    """Write the file-SD files; True when any changed."""
    changed = False
    for job, entries in file_sd(targets).items():
        text = json.dumps(entries, indent=1, sort_keys=True)
        changed |= _write_if_changed(layout.sd_dir / f"{job}.json", text)
    return changed


def write_rules(layout: Layout, slos: Mapping[str, SloSpec]) -> bool:
    """Write the rule files (removing those of deployments gone); True when any changed."""
    files = rule_files(slos)
    changed = False
    for name, data in files.items():
        changed |= _write_if_changed(layout.rules_dir / name, yaml.safe_dump(data, sort_keys=False))
    for stale in layout.rules_dir.glob("*.yaml"):
        if stale.name not in files:
            stale.unlink()
            changed = True
    return changed


def start(
    layout: Layout,
    port: int,
    scrape_s: float,
    evaluation_s: float,
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Write prometheus.yml, start Prometheus on 127.0.0.1:`port` and wait until it is
    ready (local/prometheus_server.py; the caller owns the process)."""
    config = prometheus_config(layout, scrape_s, evaluation_s)
    _write_if_changed(layout.config, yaml.safe_dump(config, sort_keys=False))
    log = layout.root / "prometheus.log"
    return start_prometheus(layout.config, layout.data, log, port, preexec)


def read_state(layout: Layout) -> dict[str, Any] | None:
    """What the running agent wrote (its pid, Prometheus' URL), or None."""
    try:
        data: dict[str, Any] = json.loads(layout.state.read_text())
    except (OSError, ValueError):
        return None
    return data


def _api(url: str, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
    import urllib.error
    import urllib.parse
    import urllib.request

    full = f"{url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(full, timeout=5) as answer:
            data = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        raise UserError(
            f"cannot query Prometheus at {url}: {exc}",
            fix="check the URL (`glmctl status` prints the embedded one) or omit --prometheus.",
        ) from exc
    if data.get("status") != "success":
        raise UserError(f"Prometheus rejected a query: {data.get('error')}")
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def query(url: str, expr: str) -> list[tuple[dict[str, str], float]]:
    """An instant query: (labels, value) per series."""
    return [
        (r["metric"], float(r["value"][1])) for r in _api(url, "/api/v1/query", {"query": expr})
    ]


def query_range(
    url: str, expr: str, seconds: float, step: float
) -> list[tuple[dict[str, str], list[float]]]:
    """A range query over the last `seconds`: (labels, values) per series."""
    end = time.time()
    params = {
        "query": expr,
        "start": f"{end - seconds:.3f}",
        "end": f"{end:.3f}",
        "step": f"{step:g}",
    }
    return [
        (r["metric"], [float(v) for _, v in r["values"]])
        for r in _api(url, "/api/v1/query_range", params)
    ]
