"""Prefill/decode disaggregation: recording rules, alerts and dashboard panels (pure).

Every name comes from catalog/pd_metrics.py (the engines' own, pinned per version). A PD
deployment runs one engine, so each recorded series has one rule per engine joined by
name: the engine that is not running records nothing.

Recorded, per deployment:
- `glmctl:pd_queue_requests{queue}`: the PD queues (SGLang's prefill bootstrap / inflight,
  decode prealloc / transfer gauges) and each pool's waiting queue (`prefill_waiting`,
  `decode_waiting`: the engine's waiting gauge selected by pool: SGLang's `engine_type`
  label, vLLM's `pd` target label);
- `glmctl:pd_pool_replicas{pool}` and `glmctl:pd_backlog_per_replica{pool}`: requests a
  pool has not started per replica of that pool: prefill, its waiting queue; decode, the
  requests prefilled but waiting for decode memory (SGLang's prealloc queue, vLLM's decode
  waiting queue, which holds the requests waiting for remote KV);
- `glmctl:pd_prefill_per_decode`: the P:D replica ratio in use (1 prefill : 2 decode = 0.5);
- `glmctl:pd_kv_transfer_seconds:p99` (from each engine's own bounds and unit) and
  `glmctl:pd_kv_transfer_failures:rate1m`.

Alerts: a slow KV transfer, failing transfers, and pools out of balance (one pool's backlog
over QUEUE_PER_REPLICA per replica while the other's is under one request per replica: the
ratio, not the total, is wrong; the alert names the pool to grow).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controlplane.catalog import pd_metrics as pm
from controlplane.observe.alerts import QUEUE_PER_REPLICA, alert

W = "1m"  # rules.RATE_WINDOW (not imported: rules.py imports this module)
KV_TRANSFER_SLOW_S = 1.0  # half the default TTFT objective (slo.ttft_p99 2 s) in transfer
TRANSFER_FAILURES_PER_S = 0.0  # any sustained failure: each one is a failed request
QUEUE, POOL, FLAVOR = "queue", "pool", "flavor"


def _rule(record: str, expr: str, engine: pm.PdMetrics, **labels: str) -> dict[str, Any]:
    """A recording rule whose series carry `flavor` (one rule per engine and name: promtool
    rejects rules that record the same name with the same labels) and `labels`."""
    return {"record": record, "expr": expr, "labels": {FLAVOR: engine.flavor, **labels}}


def _pool_sel(engine: pm.PdMetrics, name: str, pool: str) -> str:
    return f'{name}{{{engine.pool_label}="{pool}"}}'


def _waiting(engine: pm.PdMetrics, pool: str) -> str:
    return f"sum by (deployment) ({_pool_sel(engine, engine.waiting, pool)})"


def _backlog(engine: pm.PdMetrics, pool: str) -> str:
    """Requests the pool has not started (see the module docstring)."""
    if pool == pm.DECODE:
        prealloc = [q.name for q in engine.queues if q.stage == "decode_prealloc"]
        if prealloc:
            return f"sum by (deployment) ({_pool_sel(engine, prealloc[0], pool)})"
    return _waiting(engine, pool)


def _replicas(engine: pm.PdMetrics, pool: str) -> str:
    per_replica = f"max by (deployment, replica) ({_pool_sel(engine, engine.waiting, pool)})"
    return f"count by (deployment) ({per_replica})"


def _queue_rules(engine: pm.PdMetrics) -> list[dict[str, Any]]:
    rules = []
    for q in engine.queues:  # only a PD pool's replicas: colocated SGLang exports them too
        depth = f"sum by (deployment) ({_pool_sel(engine, q.name, q.pool)})"
        rules.append(_rule("glmctl:pd_queue_requests", depth, engine, queue=q.stage))
    for pool in (pm.PREFILL, pm.DECODE):
        queue = f"{pool}_waiting"
        rules.append(_rule("glmctl:pd_queue_requests", _waiting(engine, pool), engine, queue=queue))
    return rules


def _pool_rules(engine: pm.PdMetrics) -> list[dict[str, Any]]:
    rules = []
    for pool in (pm.PREFILL, pm.DECODE):
        replicas = _replicas(engine, pool)
        rules.append(_rule("glmctl:pd_pool_replicas", replicas, engine, pool=pool))
        per_replica = f"{_backlog(engine, pool)} / {replicas}"
        rules.append(_rule("glmctl:pd_backlog_per_replica", per_replica, engine, pool=pool))
    ratio = f"{_replicas(engine, pm.PREFILL)} / {_replicas(engine, pm.DECODE)}"
    rules.append(_rule("glmctl:pd_prefill_per_decode", ratio, engine))
    return rules


def _transfer_rules(engine: pm.PdMetrics) -> list[dict[str, Any]]:
    hist = engine.transfer_latency
    rate = f"sum by (deployment, le) (rate({hist.name}_bucket[{W}]))"
    p99 = f"histogram_quantile(0.99, {rate})"
    if engine.transfer_latency_unit_s != 1.0:
        p99 = f"{p99} * {engine.transfer_latency_unit_s:g}"
    # One sum per counter, added: one selector over several names fails once rate() drops
    # the names ("vector cannot contain metrics with the same labelset"), and `or` between
    # them would drop the second counter's series (same labels). A counter an engine has
    # not exported yet counts 0 for a deployment that exports the other.
    names = "|".join(engine.transfer_failures)
    present = f'group by (deployment) ({{__name__=~"{names}"}}) * 0'
    failures = " + ".join(
        f"(sum by (deployment) (rate({name}[{W}])) or {present})"
        for name in engine.transfer_failures
    )
    return [
        _rule("glmctl:pd_kv_transfer_seconds:p99", p99, engine),
        _rule(f"glmctl:pd_kv_transfer_failures:rate{W}", failures, engine),
    ]


def pd_recording_rules() -> list[dict[str, Any]]:
    """The PD recording rules (one rule group), for every engine in PD_ENGINES."""
    rules: list[dict[str, Any]] = []
    for engine in pm.PD_ENGINES:
        rules += _queue_rules(engine) + _pool_rules(engine) + _transfer_rules(engine)
    return rules


def pd_alerts() -> list[dict[str, Any]]:
    """The PD operational alerts."""
    backlog = "glmctl:pd_backlog_per_replica"
    full = f'{backlog}{{pool="%s"}} > {QUEUE_PER_REPLICA}'
    idle = f'on (deployment) {backlog}{{pool="%s"}} < 1'
    unbalanced = (
        f"({full % pm.PREFILL} and {idle % pm.DECODE})"
        f" or ({full % pm.DECODE} and {idle % pm.PREFILL})"
    )
    return [
        alert(
            "GlmctlKvTransferSlow",
            f"glmctl:pd_kv_transfer_seconds:p99 > {KV_TRANSFER_SLOW_S:g}",
            "10m",
            "warning",
            "{{ $labels.deployment }}: p99 KV transfer from prefill to decode takes"
            ' {{ $value | printf "%.2f" }} s',
            "The transfer eats the time-to-first-token budget. Check that the pools are on"
            " the declared network (RDMA device up, not falling back to TCP), that the"
            " transfer backend matches on both pools, and the link's load; `glmctl top`"
            " shows both pools.",
        ),
        alert(
            "GlmctlKvTransferFailing",
            f"glmctl:pd_kv_transfer_failures:rate{W} > {TRANSFER_FAILURES_PER_S:g}",
            "5m",
            "critical",
            "{{ $labels.deployment }}: KV transfers (or their bootstrap) keep failing",
            "Requests fail after prefill. Look for KVTransferError / bootstrap timeouts in"
            " the prefill and decode engine logs; a decode replica that restarted or a"
            " blocked bootstrap port is the usual cause. Restart the failing pair's replicas.",
        ),
        alert(
            "GlmctlPdPoolsUnbalanced",
            unbalanced,
            "10m",
            "warning",
            "{{ $labels.deployment }}: the {{ $labels.pool }} pool holds a backlog while the"
            " other pool idles",
            "The P:D ratio does not fit the traffic (prompt vs output lengths changed). Raise"
            " the {{ $labels.pool }} pool's replicas.max (or its replicas) in the topology's"
            " disaggregation section, or let `glmctl capacity --search` propose a new xPyD.",
        ),
    ]


def pd_panels() -> list[tuple[str, str, Sequence[tuple[str, str]]]]:
    """Panels of the PD dashboard: (title, unit, [(PromQL, legend)])."""
    dep = 'deployment=~"$deployment"'
    return [
        ("KV transfer p99 (prefill to decode)", "s",
         [(f"glmctl:pd_kv_transfer_seconds:p99{{{dep}}}", "{{deployment}}")]),
        ("KV transfer failures per second", "short",
         [(f"glmctl:pd_kv_transfer_failures:rate{W}{{{dep}}}", "{{deployment}}")]),
        ("PD queue depths", "short",
         [(f"glmctl:pd_queue_requests{{{dep}}}", "{{deployment}} {{queue}}")]),
        ("Backlog per replica by pool (the P:D balance)", "short",
         [(f"glmctl:pd_backlog_per_replica{{{dep}}}", "{{deployment}} {{pool}}")]),
        ("Pool replicas and the P:D ratio", "short",
         [(f"glmctl:pd_pool_replicas{{{dep}}}", "{{deployment}} {{pool}}"),
          (f"glmctl:pd_prefill_per_decode{{{dep}}}", "{{deployment}} prefill per decode")]),
    ]  # fmt: skip
