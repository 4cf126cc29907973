"""Grafana dashboards as code (grafana-foundation-sdk, Grafana 11.6 flavour; the `ops` extra).

Five dashboards: fleet overview, router, capacity and scaling, per-replica drill-down by
node rank, and the prefill/decode pools (observe/pd.py). Every query reads catalogue names
(mostly the glmctl:engine_* recording rules, so one panel serves SGLang, vLLM and the
simulator) and uses histogram rates, never all-time averages. `render_dashboards()` is
what `glmctl dashboards render` writes to ops/dashboards/ and what the Kubernetes renderer
puts in a ConfigMap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from controlplane.observe import catalog as cat
from controlplane.observe.pd import pd_panels

DATASOURCE = "${datasource}"
SEL = 'deployment=~"$deployment",model=~"$model"'
RATE = "$__rate_interval"
QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))

Query = tuple[str, str]  # (PromQL, legend)
PanelSpec = tuple[str, str, Sequence[Query]]  # (title, unit, queries)


def _quantiles(bucket_series: str, extra: str = "", by: str = "") -> list[Query]:
    group = f"{by}, le" if by else "le"
    legend_by = "{{" + by + "}} " if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) ({bucket_series}{{{SEL}{extra}}}))",
            f"{legend_by}{name}",
        )
        for q, name in QUANTILES
    ]


def _raw_quantiles(histogram: str, extra: str = "") -> list[Query]:
    return [
        (
            f"histogram_quantile({q}, sum by (le)"
            f" (rate({histogram}_bucket{{{SEL}{extra}}}[{RATE}])))",
            name,
        )
        for q, name in QUANTILES
    ]


def _per_replica(series: str) -> list[Query]:
    return [(f"sum by (replica) ({series}{{{SEL}}})", "{{replica}}")]


def fleet_panels() -> list[PanelSpec]:
    req = f"glmctl_router_requests_total{{{SEL}}}"
    slo = 'deployment=~"$deployment"'
    return [
        ("Requests per second by status", "reqps",
         [(f"sum by (status) (rate({req}[{RATE}]))", "{{status}}")]),
        ("Errors per second by kind", "reqps",
         [(f"sum by (kind) (rate(glmctl_router_errors_total{{{SEL}}}[{RATE}])) or vector(0)",
           "{{kind}}")]),
        ("Time to first token", "s", _quantiles("glmctl:engine_ttft_seconds_bucket:rate1m")),
        ("Inter-token latency", "s", _quantiles("glmctl:engine_itl_seconds_bucket:rate1m")),
        ("End-to-end latency", "s", _quantiles("glmctl:engine_e2e_seconds_bucket:rate1m")),
        ("Tokens per second", "short",
         [(f"sum(glmctl:engine_prompt_tokens:rate1m{{{SEL}}})", "input"),
          (f"sum(glmctl:engine_generation_tokens:rate1m{{{SEL}}})", "output")]),
        ("Running requests per replica", "short", _per_replica("glmctl:engine_running")),
        ("Waiting requests per replica", "short", _per_replica("glmctl:engine_waiting")),
        ("KV cache usage per replica", "percentunit",
         [(f"max by (replica) (glmctl:engine_kv_usage{{{SEL}}})", "{{replica}}")]),
        ("Prefix-cache hit ratio", "percentunit",
         [(f"max by (replica) ({cat.PREFIX_HIT_RATIO}{{{SEL}}})", "{{replica}}")]),
        ("Speculative acceptance length (tokens per step)", "short",
         [(f"max by (replica) ({cat.SPEC_ACCEPT_LENGTH}{{{SEL}}})", "{{replica}}")]),
        ("SLO attainment (1 h)", "percentunit",
         [(f"1 - glmctl:slo_ttft_bad:ratio_rate1h{{{slo}}}", "TTFT {{deployment}}"),
          (f"1 - glmctl:slo_itl_bad:ratio_rate1h{{{slo}}}", "ITL {{deployment}}"),
          (f"1 - glmctl:slo_errors_bad:ratio_rate1h{{{slo}}}", "availability {{deployment}}")]),
    ]  # fmt: skip


def router_panels() -> list[PanelSpec]:
    blocks = f"rate(glmctl_router_prefix_blocks_total{{{SEL}}}[{RATE}])"
    matched = f"rate(glmctl_router_prefix_blocks_matched_total{{{SEL}}}[{RATE}])"
    predicted = f"rate(glmctl_router_kv_predicted_hit_blocks_total{{{SEL}}}[{RATE}])"
    prompt = f"rate(glmctl_router_kv_prompt_blocks_total{{{SEL}}}[{RATE}])"
    return [
        ("Routing decisions by policy and reason", "reqps",
         [(f"sum by (policy, reason) (rate(glmctl_router_decisions_total{{{SEL}}}[{RATE}]))",
           "{{policy}} {{reason}}")]),
        ("Prefix-block hit ratio across router workers", "percentunit",
         [(f"sum({matched}) / sum({blocks})", "matched / routed by prefix")]),
        ("precise_prefix: hits the router predicted vs the engines' own", "percentunit",
         [(f"sum({predicted}) / sum({prompt})", "predicted from KV events"),
          (f"avg({cat.PREFIX_HIT_RATIO}{{{SEL}}})", "reported by the engines")]),
        ("Router time to first upstream byte", "s", _raw_quantiles("glmctl_router_ttft_seconds")),
        ("Router end-to-end time", "s", _raw_quantiles("glmctl_router_e2e_seconds")),
        ("Redis lookup latency", "s", _raw_quantiles("glmctl_router_redis_seconds")),
        ("Redis reachable (min over routers)", "short",
         [(f"min(glmctl_router_redis_up{{{SEL}}})", "redis up")]),
        ("429s by cause and retries", "reqps",
         [(f'sum by (kind) (rate(glmctl_router_errors_total{{{SEL},kind=~"rate_limit.*"}}'
           f"[{RATE}])) or vector(0)", "{{kind}}"),
          (f"sum(rate(glmctl_router_retries_total{{{SEL}}}[{RATE}])) or vector(0)", "retries")]),
        ("In flight per endpoint", "short",
         [(f"sum by (endpoint) (glmctl_router_inflight{{{SEL}}})", "{{endpoint}}")]),
    ]  # fmt: skip


def capacity_panels() -> list[PanelSpec]:
    dep = 'deployment=~"$deployment"'
    return [
        ("Replicas: applied, serving, autoscaler wants, cluster holds", "short",
         [(f"max by (deployment) (glmctl_deployment_replicas_wanted{{{dep}}})", "applied"),
          (f"glmctl:deployment_replicas_up{{{dep}}}", "serving"),
          (f"max by (deployment) (glmctl_autoscale_desired_replicas{{{dep}}})", "wanted"),
          (f"max by (deployment) (glmctl_autoscale_running_replicas{{{dep}}})", "running"),
          (f"max by (deployment) (glmctl_autoscale_max_replicas{{{dep}}})", "cluster holds")]),
        ("Autoscaling decisions", "short",
         [(f"sum by (direction, reason) (increase(glmctl_autoscale_decisions_total{{{dep}}}"
           f"[{RATE}])) or vector(0)", "{{direction}} {{reason}}")]),
        ("Overflow to external endpoints (counted as demand) and their health", "short",
         [(f"sum by (reason) (rate(glmctl_router_overflow_total{{{SEL}}}[{RATE}])) or vector(0)",
           "overflow/s {{reason}}"),
          (f"max by (deployment) (glmctl_autoscale_overflow_inflight{{{dep}}})",
           "on overflow now"),
          (f'min by (endpoint) (glmctl_router_endpoint_up{{{SEL},kind="external"}})',
           "up {{endpoint}}")]),
        ("GPU memory per GPU: planned by the capacity model", "bytes",
         [(f"max by (component) (glmctl_plan_gpu_memory_bytes{{{dep}}})", "{{component}}")]),
        ("KV cache capacity SGLang reports (tokens; vLLM reports blocks as a label)", "short",
         [(f"max by (replica) ({cat.SGLANG_KV_CAPACITY}{{{SEL}}})", "{{replica}}")]),
        ("Host RAM per node: planned vs available", "bytes",
         [(f"max by (deployment) (glmctl_plan_host_memory_bytes{{{dep}}})",
           "planned {{deployment}}"),
          ("min(glmctl_node_memory_available_bytes)", "available on this host")]),
        ("KV usage vs queue (all replicas)", "short",
         [(f"avg(glmctl:engine_kv_usage{{{SEL}}})", "KV usage"),
          (f"sum(glmctl:engine_waiting{{{SEL}}})", "waiting")]),
    ]  # fmt: skip


def replica_panels() -> list[PanelSpec]:
    one = ',replica=~"$replica"'
    sel = SEL + one
    return [
        ("Node ranks up", "short",
         [("min by (replica, node_rank)"
           f' (glmctl_replica_rank_up{{deployment=~"$deployment"{one}}})',
           "{{replica}} rank {{node_rank}}")]),
        ("Engine scrape up", "short",
         [(f'up{{job="{cat.JOB_ENGINE}",{sel}}}', "{{replica}} rank {{node_rank}}")]),
        ("Running and waiting", "short",
         [(f"glmctl:engine_running{{{sel}}}", "{{replica}} running"),
          (f"glmctl:engine_waiting{{{sel}}}", "{{replica}} waiting")]),
        ("KV cache usage", "percentunit",
         [(f"glmctl:engine_kv_usage{{{sel}}}", "{{replica}} rank {{node_rank}}")]),
        ("Generated tokens per second", "short",
         [(f"glmctl:engine_generation_tokens:rate1m{{{sel}}}", "{{replica}}")]),
        ("Time to first token by replica", "s",
         _quantiles("glmctl:engine_ttft_seconds_bucket:rate1m", one, "replica")),
    ]  # fmt: skip


# uid -> (file name, title, panels, extra variables)
DASHBOARDS = {
    "glmctl-fleet": ("fleet-overview.json", "glmctl / Fleet overview", fleet_panels),
    "glmctl-router": ("router.json", "glmctl / Router", router_panels),
    "glmctl-capacity": ("capacity-scaling.json", "glmctl / Capacity and scaling", capacity_panels),
    "glmctl-replica": ("replica-drilldown.json", "glmctl / Replica drill-down", replica_panels),
    "glmctl-pd": ("pd-disaggregation.json", "glmctl / Prefill-decode pools", pd_panels),
}


def _variables(with_replica: bool) -> list[Any]:
    from grafana_foundation_sdk.builders import dashboard as gd
    from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

    source = DataSourceRef(type_val="prometheus", uid=DATASOURCE)
    names = [
        ("deployment", "label_values(glmctl:engine_running, deployment)"),
        ("model", 'label_values(glmctl:engine_running{deployment=~"$deployment"}, model)'),
    ]
    if with_replica:
        names.append(
            ("replica", 'label_values(glmctl:engine_running{deployment=~"$deployment"}, replica)')
        )
    out: list[Any] = [gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus")]
    for name, query in names:
        variable = (
            gd.QueryVariable(name)
            .label(name)
            .datasource(source)
            .query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        out.append(variable)
    return out


def _panel(title: str, unit: str, queries: Sequence[Query]) -> Any:
    from grafana_foundation_sdk.builders import prometheus, timeseries
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    source = DataSourceRef(type_val="prometheus", uid=DATASOURCE)
    panel = timeseries.Panel().title(title).unit(unit).datasource(source).span(12).height(8)
    for index, (expr, legend) in enumerate(queries):
        target = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(65 + index))
        panel = panel.with_target(target)
    return panel


def build_dashboard(uid: str) -> dict[str, Any]:
    """One dashboard's JSON model."""
    from grafana_foundation_sdk.builders import dashboard as gd
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    _, title, panels = DASHBOARDS[uid]
    board = (
        gd.Dashboard(title)
        .uid(uid)
        .tags(["glmctl"])
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
    )
    for variable in _variables(with_replica=uid == "glmctl-replica"):
        board = board.with_variable(variable)
    for spec in panels():
        board = board.with_panel(_panel(*spec))
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return data


def render_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON model, for every dashboard."""
    return {file: build_dashboard(uid) for uid, (file, _, _) in DASHBOARDS.items()}


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of a dashboard's panels."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard.get("panels", [])
        for target in panel.get("targets", [])
    ]
