"""Observe commands: dashboards render / push, rules render, top.

Dashboards and rules are generated from controlplane.observe at run time (no repository
files needed); `dashboards` needs the `ops` extra (grafana-foundation-sdk, grafana-client).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from controlplane.cli.options import console
from controlplane.errors import UserError

dashboards_app = typer.Typer(help="Grafana dashboards generated from the metrics catalogue.")
rules_app = typer.Typer(help="Prometheus recording and alert rules.")
Out = Annotated[Path, typer.Option("--out", help="Directory to write into.")]


def _render_all() -> dict[str, dict[str, Any]]:
    try:
        from controlplane.observe.dashboards import render_dashboards
    except ImportError as exc:
        raise UserError(
            f"dashboards need the ops extra ({exc.name} is missing).",
            fix="pip install 'glmctl[ops]'.",
        ) from exc
    return render_dashboards()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    console.print(f"wrote {path}")


def dashboards_render(
    out: Out = Path("ops/dashboards"),
    provisioning: Annotated[
        Path | None,
        typer.Option(help="Also write Grafana provisioning files (datasource, provider) here."),
    ] = None,
    prometheus_url: Annotated[
        str, typer.Option(help="Datasource URL for the provisioning files.")
    ] = "http://127.0.0.1:9090",
) -> None:
    """Write every dashboard's JSON model to OUT."""
    for name, model in _render_all().items():
        _write(out / name, json.dumps(model, indent=2, sort_keys=True) + "\n")
    if provisioning is not None:
        from controlplane.observe.grafana import provisioning as files

        for name, data in files(prometheus_url, "/var/lib/grafana/dashboards/glmctl").items():
            _write(provisioning / name, yaml.safe_dump(data, sort_keys=False))


def dashboards_push(
    grafana_url: Annotated[
        str | None, typer.Option(help="Grafana's root URL (default: GLMCTL_GRAFANA_URL).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Service-account token (default: GLMCTL_GRAFANA_TOKEN).")
    ] = None,
    folder: Annotated[str | None, typer.Option(help="Folder uid to save into.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print each request instead of sending it.")
    ] = False,
) -> None:
    """Create or replace every dashboard in a Grafana (idempotent: matched by uid)."""
    from controlplane.observe.grafana import DASHBOARD_API, payload, push
    from controlplane.settings import get_settings

    settings = get_settings()
    url = grafana_url or settings.grafana_url
    if not url:
        raise UserError(
            "no Grafana URL given.", fix="pass --grafana-url or set GLMCTL_GRAFANA_URL."
        )
    dashboards = _render_all()
    if dry_run:
        for model in dashboards.values():
            request = {"method": "POST", "url": url.rstrip("/") + DASHBOARD_API}
            typer.echo(json.dumps({**request, "body": payload(model, folder)}, sort_keys=True))
        return
    answers = push(url, token or settings.grafana_token, dashboards, folder)
    for name, answer in zip(dashboards, answers, strict=True):
        console.print(f"pushed {name}: {answer.get('status', '?')} {answer.get('url', '')}")


def rules_render(
    out: Out = Path("ops/prometheus"),
    topology: Annotated[
        Path | None, typer.Option(help="Take the SLO from this topology (default: spec defaults).")
    ] = None,
    runbook_base: Annotated[
        str | None,
        typer.Option(
            help="Docs site the alerts' runbook_url links point into (default: this version's"
            " pages on the glmctl docs site); e.g. your own mirror of `mkdocs build`."
        ),
    ] = None,
) -> None:
    """Write recording.yaml and alerts.yaml (check them with `promtool check rules`).

    Every alert carries an absolute `runbook_url` to its own page of the docs site."""
    from controlplane.observe.alerts import DEFAULT_DOCS_BASE, with_runbook_base
    from controlplane.observe.rules import alert_rules, recording_rules
    from controlplane.spec.models import SloSpec

    slo = SloSpec()
    if topology is not None:
        from controlplane.spec import load_topology

        slo = load_topology(topology).spec.slo
    alerts = with_runbook_base(alert_rules(slo), runbook_base or DEFAULT_DOCS_BASE)
    _write(out / "recording.yaml", yaml.safe_dump(recording_rules(), sort_keys=False))
    _write(out / "alerts.yaml", yaml.safe_dump(alerts, sort_keys=False))


def _collect(prometheus: str | None, address: str | None) -> Any:
    """One frame from Prometheus when one runs, else from the routers' Redis snapshots."""
    from controlplane.observe import prometheus as prom
    from controlplane.observe import top

    if prometheus is None:
        from controlplane.backends.ray import monitor

        prometheus = monitor.prometheus_url()
    if prometheus:
        results = {key: prom.query(prometheus, expr) for key, expr in top.QUERIES.items()}
        history = {
            (m.get("deployment", ""), m.get("replica", ""), m.get("node_rank", "0")): values
            for m, values in prom.query_range(prometheus, top.HISTORY_QUERY, 120, 5)
        }
        return top.build_frame(prometheus, results, history)
    from controlplane.backends.ray import monitor
    from controlplane.backends.ray.deploy import resolve_target

    target = resolve_target(address, None)
    if target is None:
        raise UserError("no cluster runs and nothing is deployed.", fix="`glmctl apply FILE`.")
    return top.build_frame("redis (router load snapshots)", monitor.redis_samples(target.redis_url))


def _key_pressed() -> str:
    import select
    import sys

    if sys.stdin.isatty() and select.select([sys.stdin], [], [], 0)[0]:
        return sys.stdin.read(1)
    return ""


def top_cmd(
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes.")] = 2.0,
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus URL (default: the embedded one, else Redis).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
) -> None:
    """Live view of running deployments (`q` quits).

    Per replica and node rank: load, queue, KV usage, tokens/s, TTFT p50/p99 with a
    sparkline; router decisions and prefix hit ratio; autoscaler state.
    """
    from controlplane.observe import top

    if once:
        console.print(top.render(_collect(prometheus, address)))
        return
    import contextlib
    import sys
    import termios
    import tty

    from rich.live import Live

    with contextlib.ExitStack() as stack:
        if sys.stdin.isatty():  # single keys without Enter; the terminal is restored on exit
            saved: Any = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())
            stack.callback(termios.tcsetattr, sys.stdin, termios.TCSADRAIN, saved)
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                live.update(top.render(_collect(prometheus, address)), refresh=True)
                deadline = time.monotonic() + interval
                while time.monotonic() < deadline:
                    if _key_pressed().lower() == "q":
                        return
                    time.sleep(0.1)


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    dashboards_app.command("render")(dashboards_render)
    dashboards_app.command("push")(dashboards_push)
    rules_app.command("render")(rules_render)
    app.add_typer(dashboards_app, name="dashboards")
    app.add_typer(rules_app, name="rules")
    app.command("top")(top_cmd)
