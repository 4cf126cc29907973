"""Push dashboards to an existing Grafana (grafana-client; the `ops` extra), and the
provisioning files that let a Grafana load them from disk instead.

Pushing is idempotent by uid: each dashboard is saved with `overwrite: true` and no numeric
id, so a second push replaces the first. No Grafana server can be installed here, so the
push is tested against an HTTP server that answers like Grafana's dashboard API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.errors import UserError

DASHBOARD_API = "/api/dashboards/db"


def payload(dashboard: Mapping[str, Any], folder_uid: str | None = None) -> dict[str, Any]:
    """The body of one POST /api/dashboards/db (what --dry-run prints)."""
    model = {k: v for k, v in dashboard.items() if k != "id"}
    body: dict[str, Any] = {
        "dashboard": model,
        "overwrite": True,
        "message": "glmctl dashboards push",
    }
    if folder_uid:
        body["folderUid"] = folder_uid
    return body


def push(
    url: str, token: str | None, dashboards: Mapping[str, Mapping[str, Any]], folder_uid: str | None
) -> list[dict[str, Any]]:
    """Save every dashboard; Grafana's answers, in order. Wrong URL or token: UserError."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

    api = GrafanaApi.from_url(url, credential=token, timeout=10.0)
    answers = []
    for name, dashboard in dashboards.items():
        try:
            answers.append(api.dashboard.update_dashboard(payload(dashboard, folder_uid)))
        except GrafanaUnauthorizedError as exc:
            raise UserError(
                f"Grafana at {url} refused the token ({exc}).",
                fix="set GLMCTL_GRAFANA_TOKEN (or --token) to a service-account token with the"
                " Editor role.",
            ) from exc
        except (GrafanaClientError, GrafanaException) as exc:
            raise UserError(f"Grafana at {url} rejected {name}: {exc}.") from exc
        except Exception as exc:  # niquests connection errors and non-JSON answers
            raise UserError(
                f"cannot push {name} to {url}: {type(exc).__name__}: {exc}",
                fix="check --grafana-url (scheme, host, port; Grafana's root URL, not a"
                " dashboard link).",
            ) from exc
    return answers


def provisioning(prometheus_url: str, dashboards_dir: str) -> dict[str, dict[str, Any]]:
    """Grafana provisioning files: the Prometheus datasource and a dashboard provider."""
    datasource = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "glmctl-prometheus",
                "uid": "glmctl-prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "jsonData": {"timeInterval": "5s"},
            }
        ],
    }
    provider = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "glmctl",
                "folder": "glmctl",
                "type": "file",
                "disableDeletion": False,
                "updateIntervalSeconds": 30,
                "allowUiUpdates": False,
                "options": {"path": dashboards_dir, "foldersFromFilesStructure": False},
            }
        ],
    }
    return {"datasources/glmctl.yaml": datasource, "dashboards/glmctl.yaml": provider}
