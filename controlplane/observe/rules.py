"""Prometheus recording and alert rules, generated from the catalogue (pure).

`recording_rules()` maps vLLM's and SGLang's names (and the simulator, which speaks both)
onto one set of `glmctl:engine_*` series, so dashboards and alerts read the same over
every flavour. The SLO ratios are computed per engine from that engine's own histogram
bounds (catalog/engine_metrics.py): SGLang's and vLLM's TTFT and ITL buckets differ, so a
selector on one engine's `le` values matches nothing on the other. The availability SLI
counts the router's bad outcomes (5xx, 429 because every queue is full, mid-stream
failures: router/metrics.py). `alert_rules(slo)` holds the multi-window multi-burn-rate SLO alerts
(Google SRE workbook, "Alerting on SLOs": 14.4x over 1 h and 5 m, 6x over 6 h and 30 m)
and the operational alerts. Both return rule-file dicts ({"groups": [...]}) that
`promtool check rules` accepts; the Kubernetes renderer wraps them in a PrometheusRule.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from controlplane.catalog import engine_metrics as mn
from controlplane.observe import catalog as cat
from controlplane.observe.alerts import alert as _alert
from controlplane.observe.alerts import operational_alerts
from controlplane.observe.pd import pd_alerts, pd_recording_rules
from controlplane.router.metrics import BAD_OUTCOMES, REQUESTS
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
            {"name": "glmctl-pd", "rules": pd_recording_rules()},
        ]
    }


def _sel(name: str, matchers: str) -> str:
    return f"{name}{{{matchers}}}" if matchers else name


def _join(*matchers: str) -> str:
    return ",".join(m for m in matchers if m)


def good_rate(hist: mn.HistogramNames, threshold: float, window: str, match: str) -> str:
    """Rate of `hist`'s observations at or under `threshold`, from that engine's own bounds:
    the bucket itself when `threshold` is a bound, else interpolated linearly inside the
    bucket holding it (the assumption histogram_quantile makes)."""

    def bucket(bound: float) -> str:
        sel = _sel(f"{hist.name}_bucket", _join(f'le="{mn.le_text(bound)}"', match))
        return f"sum by (deployment) (rate({sel}[{window}]))"

    bounds = hist.bounds
    index = bisect_left(bounds, threshold)
    if index == len(bounds):
        count = _sel(f"{hist.name}_count", match)
        return f"sum by (deployment) (rate({count}[{window}]))"
    hi = bounds[index]
    if hi == threshold:
        return bucket(hi)
    lo = bounds[index - 1] if index else 0.0
    share = (threshold - lo) / (hi - lo)
    low = bucket(lo) if index else "0"
    return f"({low} + {share:.6g} * ({bucket(hi)} - {low}))"


def how_good_is_counted(engine: mn.PrometheusMetrics, hist: mn.HistogramNames, slo: float) -> str:
    """One comment line saying which bounds the SLI of `engine` reads for objective `slo`."""
    where = f"{engine.flavor} {engine.version} {hist.name}"
    index = bisect_left(hist.bounds, slo)
    if index == len(hist.bounds):
        return f"# {where}: no bound at or above {slo:g} s, so every counted one is good"
    if hist.bounds[index] == slo:
        return f'# {where}: le="{mn.le_text(slo)}" is the objective itself'
    lo = mn.le_text(hist.bounds[index - 1]) if index else "0"
    return (
        f"# {where}: no bound at {slo:g} s; interpolated linearly between le={lo} and"
        f" le={mn.le_text(hist.bounds[index])} (as histogram_quantile would)"
    )


def latency_bad_ratio(
    pick: Callable[[mn.PrometheusMetrics], mn.HistogramNames],
    slo: float,
    window: str,
    match: str,
) -> str:
    """Share of observations over `slo`, per deployment, for whichever engine it runs: one
    term per engine (each from its own bounds), joined by `or` (a deployment runs one
    engine, so one term has samples). Starts with comment lines saying how each counts."""
    comments, terms = [], []
    for engine in mn.PROMETHEUS_ENGINES:
        hist = pick(engine)
        total = f"sum by (deployment) (rate({_sel(hist.name + '_count', match)}[{window}]))"
        comments.append(how_good_is_counted(engine, hist, slo))
        terms.append(f"(1 - {good_rate(hist, slo, window, match)} / {total})")
    return "\n".join(comments) + "\n" + "\nor\n".join(terms)


def _availability_bad_ratio(window: str, match: str) -> str:
    requests = _sel(REQUESTS, match)
    bad = f'outcome=~"{"|".join(BAD_OUTCOMES)}"'
    failed = f"sum by (deployment) (rate({_sel(REQUESTS, _join(match, bad))}[{window}]))"
    total = f"sum by (deployment) (rate({requests}[{window}]))"
    return f"({failed} or {total} * 0) / {total}"  # no failure yet is a ratio of 0, not none


def _slo_recording(slo: SloSpec, match: str) -> list[dict[str, str]]:
    latency: tuple[tuple[str, Callable[[mn.PrometheusMetrics], mn.HistogramNames], float], ...]
    latency = (("ttft", lambda e: e.ttft, slo.ttft_p99), ("itl", lambda e: e.itl, slo.itl_p99))
    rules = []
    for window in SLO_WINDOWS:
        for name, pick, threshold in latency:
            expr = latency_bad_ratio(pick, threshold, window, match)
            rules.append(_rule(f"glmctl:slo_{name}_bad:ratio_rate{window}", expr))
        expr = _availability_bad_ratio(window, match)
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
        groups.append({"name": "glmctl-operations", "rules": operational_alerts() + pd_alerts()})
    return {"groups": groups}
