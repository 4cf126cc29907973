"""Prometheus recording and alert rules, generated from the catalogue (pure).

`recording_rules()` maps vLLM's and SGLang's names (and the simulator, which speaks both)
onto one set of `glmctl:engine_*` series, so dashboards and alerts read the same over
every flavour. `alert_rules(slo)` holds the multi-window multi-burn-rate SLO alerts
(Google SRE workbook, "Alerting on SLOs": 14.4x over 1 h and 5 m, 6x over 6 h and 30 m)
and the operational alerts. Both return rule-file dicts ({"groups": [...]}) that
`promtool check rules` accepts; the Kubernetes renderer wraps them in a PrometheusRule.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from controlplane.observe import catalog as cat
from controlplane.observe.alerts import alert as _alert
from controlplane.observe.alerts import operational_alerts
from controlplane.spec.models import SloSpec

BY = "deployment, model, replica, node_rank"
RATE_WINDOW = "1m"  # dashboards' rate window: 4 scrapes at the 15 s default
SLO_WINDOWS = ("5m", "30m", "1h", "6h")
# (severity, burn factor, long window, short window, for): the SRE workbook's page pair.
BURN_ALERTS = (("critical", 14.4, "1h", "5m", "2m"), ("warning", 6.0, "6h", "30m", "15m"))
P99_BUDGET = 0.01  # a p99 objective lets 1 % of requests be slower


def _rule(record: str, expr: str) -> dict[str, str]:
    return {"record": record, "expr": expr}


def _engine_rules() -> list[dict[str, str]]:
    rules = []
    for series in cat.ENGINE:
        if series.kind is cat.Kind.GAUGE:
            agg = "max" if series.unified == "glmctl:engine_kv_usage" else "sum"
            rules.append(_rule(series.unified, f"{agg} by ({BY}) ({cat.engine_selector(series)})"))
        elif series.kind is cat.Kind.COUNTER:
            rate = f"rate({cat.engine_selector(series)}[{RATE_WINDOW}])"
            rules.append(_rule(f"{series.unified}:rate{RATE_WINDOW}", f"sum by ({BY}) ({rate})"))
        else:
            for part, by in (("_bucket", f"{BY}, le"), ("_count", BY), ("_sum", BY)):
                rate = f"rate({cat.engine_selector(series, part)}[{RATE_WINDOW}])"
                name = f"{series.unified}{part}:rate{RATE_WINDOW}"
                rules.append(_rule(name, f"sum by ({by}) ({rate})"))
    return rules


def _ratio_rules() -> list[dict[str, str]]:
    """Prefix-cache hit ratio and speculative acceptance length (1 + accepted / drafts).

    vLLM has counters, SGLang gauges; a zero denominator gives no sample rather than NaN.
    """
    w = RATE_WINDOW
    hits, queries = cat.VLLM_PREFIX
    accepted, drafts = cat.VLLM_SPEC
    prefix = (
        f"sum by ({BY}) (rate({hits}[{w}])) / (sum by ({BY}) (rate({queries}[{w}])) > 0)"
        f" or max by ({BY}) ({cat.SGLANG_PREFIX_GAUGE})"
    )
    spec = (
        f"1 + sum by ({BY}) (rate({accepted}[{w}])) / (sum by ({BY}) (rate({drafts}[{w}])) > 0)"
        f" or max by ({BY}) ({cat.SGLANG_SPEC_GAUGE} > 0)"
    )
    return [_rule(cat.PREFIX_HIT_RATIO, prefix), _rule(cat.SPEC_ACCEPT_LENGTH, spec)]


def _deployment_rules() -> list[dict[str, str]]:
    w = RATE_WINDOW
    return [
        _rule(
            "glmctl:deployment_replicas_up",
            f'sum by (deployment) (up{{job="{cat.JOB_ENGINE}"}})',
        ),
        _rule(
            f"glmctl:router_requests:rate{w}",
            f"sum by (deployment, status) (rate(glmctl_router_requests_total[{w}]))",
        ),
        _rule(
            f"glmctl:router_decisions:rate{w}",
            f"sum by (deployment, policy, reason) (rate(glmctl_router_decisions_total[{w}]))",
        ),
    ]


def recording_rules() -> dict[str, Any]:
    """The SLO-independent recording rules (one rule file)."""
    return {
        "groups": [
            {"name": "glmctl-engine", "rules": _engine_rules() + _ratio_rules()},
            {"name": "glmctl-deployment", "rules": _deployment_rules()},
        ]
    }


def _le(bound: float) -> str:
    return repr(float(bound))  # how prometheus_client and the simulator print `le`


def _sel(name: str, matchers: str) -> str:
    return f"{name}{{{matchers}}}" if matchers else name


def good_rate(
    series: cat.EngineSeries, threshold: float, bounds: Sequence[float], window: str, match: str
) -> str:
    """Rate of requests at or under `threshold`, interpolated linearly inside its bucket
    (as histogram_quantile does) when `threshold` is not a bucket bound."""
    extra = f",{match}" if match else ""

    def bucket(bound: float) -> str:
        sel = cat.engine_selector(series, "_bucket", f'le="{_le(bound)}"{extra}')
        return f"sum by (deployment) (rate({sel}[{window}]))"

    index = bisect_left(bounds, threshold)
    if index == len(bounds):
        count = cat.engine_selector(series, "_count", match)
        return f"sum by (deployment) (rate({count}[{window}]))"
    hi = bounds[index]
    if hi == threshold:
        return bucket(hi)
    lo = bounds[index - 1] if index else 0.0
    share = (threshold - lo) / (hi - lo)
    low = bucket(lo) if index else "0"
    return f"({low} + {share:.6g} * ({bucket(hi)} - {low}))"


def _slo_recording(slo: SloSpec, match: str) -> list[dict[str, str]]:
    latency = (
        ("ttft", cat.engine_series("glmctl:engine_ttft_seconds"), slo.ttft_p99, cat.TTFT_BUCKETS),
        ("itl", cat.engine_series("glmctl:engine_itl_seconds"), slo.itl_p99, cat.ITL_BUCKETS),
    )
    requests = _sel("glmctl_router_requests_total", match)
    errors = _sel("glmctl_router_requests_total", ",".join(filter(None, (match, 'status=~"5.."'))))
    rules = []
    for window in SLO_WINDOWS:
        for name, series, threshold, bounds in latency:
            total = cat.engine_selector(series, "_count", match)
            good = good_rate(series, threshold, bounds, window, match)
            expr = f"1 - {good} / sum by (deployment) (rate({total}[{window}]))"
            rules.append(_rule(f"glmctl:slo_{name}_bad:ratio_rate{window}", expr))
        total = f"sum by (deployment) (rate({requests}[{window}]))"
        failed = f"sum by (deployment) (rate({errors}[{window}]))"
        expr = f"({failed} or {total} * 0) / {total}"  # no 5xx yet is a ratio of 0, not none
        rules.append(_rule(f"glmctl:slo_errors_bad:ratio_rate{window}", expr))
    return rules


def _burn_alerts(slo: SloSpec, match: str) -> list[dict[str, Any]]:
    ttft, itl = f"{slo.ttft_p99:g} s", f"{slo.itl_p99:g} s"
    objectives = (
        ("ttft", "GlmctlTtftBudgetBurn", P99_BUDGET, f"p99 time to first token <= {ttft}"),
        ("itl", "GlmctlItlBudgetBurn", P99_BUDGET, f"p99 inter-token latency <= {itl}"),
        ("errors", "GlmctlAvailabilityBudgetBurn", 1 - slo.availability,
         f"availability >= {slo.availability:g}"),
    )  # fmt: skip
    alerts = []
    for key, name, budget, objective in objectives:
        for severity, factor, long, short, for_ in BURN_ALERTS:
            limit = f"{factor * budget:.6g}"
            long_bad = _sel(f"glmctl:slo_{key}_bad:ratio_rate{long}", match)
            short_bad = _sel(f"glmctl:slo_{key}_bad:ratio_rate{short}", match)
            expr = f"{long_bad} > {limit} and {short_bad} > {limit}"
            speed = "fast" if severity == "critical" else "slow"
            alerts.append(
                _alert(
                    name + ("Fast" if speed == "fast" else "Slow"),
                    expr,
                    for_,
                    severity,
                    f"{{{{ $labels.deployment }}}} burns its error budget {factor:g}x too fast"
                    f" ({objective}; over {long} and {short})",
                    "At this rate the whole 30-day budget is gone in"
                    f" {30 / factor:.1f} days. Check `glmctl top` for queues and KV usage;"
                    " scale out (`glmctl scale`) or shed load, then look for a slow replica.",
                )
            )
    return alerts


def alert_rules(slo: SloSpec, deployment: str | None = None) -> dict[str, Any]:
    """SLO burn-rate alerts for `slo` plus the operational alerts (one rule file).

    `deployment` limits the SLO rules to one deployment (the embedded Prometheus writes
    one file per running deployment, each with its own topology's SLO).
    """
    match = f'deployment="{deployment}"' if deployment else ""
    suffix = f"-{deployment}" if deployment else ""
    groups: list[dict[str, Any]] = [
        {"name": f"glmctl-slo-recording{suffix}", "rules": _slo_recording(slo, match)},
        {"name": f"glmctl-slo-alerts{suffix}", "rules": _burn_alerts(slo, match)},
    ]
    if not deployment:
        groups.append({"name": "glmctl-operations", "rules": operational_alerts()})
    return {"groups": groups}
