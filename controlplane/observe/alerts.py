"""Operational alerts: replicas, node ranks, KV cache, queues, speculative decoding, Redis,
the autoscaler. Each has a summary, a description that says what to do, and a runbook
section in the README ("Operate it") named after the alert.
"""

from __future__ import annotations

from typing import Any

from controlplane.observe import catalog as cat

QUEUE_PER_REPLICA = 5  # llm-d WVA queueLengthThreshold 5; production-stack's KEDA threshold 5
KV_SATURATED = 0.9  # gateway-api-inference-extension tools/alerts/alert.yaml: pool KV > 0.9 5m
SPEC_KEEP = 0.5  # acceptance collapse: under half the extra tokens per step of the 6 h mean
RUNBOOK = "README.md#{anchor}"


def alert(
    name: str, expr: str, for_: str, severity: str, summary: str, action: str
) -> dict[str, Any]:
    """One Prometheus alerting rule with its annotations and runbook link."""
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": action,
            "runbook_url": RUNBOOK.format(anchor=name.lower()),
        },
    }


def _replica_down() -> dict[str, Any]:
    wanted = "max by (deployment) (glmctl_deployment_replicas_wanted)"
    up = f'sum by (deployment) (up{{job="{cat.JOB_ENGINE}"}})'
    return alert(
        "GlmctlEngineReplicaDown",
        f"{wanted} - ({up} or {wanted} * 0) > 0",
        "1m",
        "critical",
        "{{ $labels.deployment }}: {{ $value }} engine replica(s) fewer serving than applied",
        "Serve replaces a failed replica by itself; if this lasts, read the replica's engine"
        " log under the state dir (`glmctl status` names the replica), check free GPUs, and"
        " `glmctl apply` the topology again.",
    )


def _rank_down() -> dict[str, Any]:
    return alert(
        "GlmctlNodeRankDown",
        "min by (deployment, replica, node_rank) (glmctl_replica_rank_up) == 0",
        "1m",
        "critical",
        "{{ $labels.deployment }} replica {{ $labels.replica }}: node rank"
        " {{ $labels.node_rank }} is down",
        "A multi-node replica cannot serve with a rank missing. Check that node (`glmctl"
        " status` lists where each rank runs); Serve restarts the whole replica.",
    )


def _kv_saturated() -> dict[str, Any]:
    return alert(
        "GlmctlKvCacheSaturated",
        "max by (deployment, replica) (avg_over_time(glmctl:engine_kv_usage[5m]))"
        f" > {KV_SATURATED}",
        "5m",
        "warning",
        "{{ $labels.deployment }} replica {{ $labels.replica }}: KV cache"
        " {{ $value | humanizePercentage }} full for 5 minutes",
        "Requests will queue or be preempted. Scale out, lower max_num_seqs or"
        " context_length, or enable FP8 KV cache; `glmctl capacity FILE` shows the budget.",
    )


def _queue_growing() -> dict[str, Any]:
    waiting = "sum by (deployment) (glmctl:engine_waiting)"
    replicas = "count by (deployment) (glmctl:engine_waiting)"
    growth = "sum by (deployment) (deriv(glmctl:engine_waiting[5m]))"
    return alert(
        "GlmctlQueueGrowing",
        f"{waiting} > {QUEUE_PER_REPLICA} * {replicas} and {growth} > 0",
        "5m",
        "warning",
        "{{ $labels.deployment }}: more than"
        f" {QUEUE_PER_REPLICA} requests waiting per replica, and growing",
        "Demand exceeds what the replicas serve. Scale out (`glmctl scale NAME --replicas N`),"
        " or check the autoscaler's state in `glmctl top`.",
    )


def _spec_collapse() -> dict[str, Any]:
    length = cat.SPEC_ACCEPT_LENGTH
    return alert(
        "GlmctlSpecAcceptanceCollapse",
        f"{length} < 1 + {SPEC_KEEP} * (avg_over_time({length}[6h]) - 1)",
        "10m",
        "warning",
        "{{ $labels.deployment }} replica {{ $labels.replica }}: speculative acceptance length"
        ' {{ $value | printf "%.2f" }} is under half its 6-hour gain',
        "Draft tokens are being rejected: the traffic changed (other languages, tool calls) or"
        " the MTP draft weights do not match the model. Compare with the same traffic on"
        " another replica; if persistent, turn speculative decoding off in the topology.",
    )


def _redis_unreachable() -> dict[str, Any]:
    return alert(
        "GlmctlRouterRedisUnreachable",
        "min by (deployment) (glmctl_router_redis_up) == 0",
        "1m",
        "critical",
        "{{ $labels.deployment }}: the router cannot reach Redis",
        "Routing falls back to each router's local view: prefix and session affinity and"
        " rate limits no longer agree across router workers. Restart or reach Redis"
        " (GLMCTL_REDIS_URL).",
    )


def _router_down() -> dict[str, Any]:
    return alert(
        "GlmctlRouterDown",
        f'up{{job="{cat.JOB_ROUTER}"}} == 0',
        "1m",
        "critical",
        "{{ $labels.deployment }}: the router does not answer /metrics",
        "Clients get connection errors. Serve restarts the router; if it does not come back,"
        " check that its port is free and read the router app's log.",
    )


def _autoscaler_capped() -> dict[str, Any]:
    desired = "max by (deployment) (glmctl_autoscale_desired_replicas)"
    holds = "max by (deployment) (glmctl_autoscale_max_replicas)"
    return alert(
        "GlmctlAutoscalerWantsMoreThanClusterHolds",
        f"{desired} > {holds}",
        "5m",
        "warning",
        "{{ $labels.deployment }}: the autoscaler wants more replicas than the cluster holds",
        "Load is above what the cluster can serve at the SLO. Add GPU nodes, shed load, or"
        " accept the latency; `glmctl capacity --search` suggests smaller layouts.",
    )


def operational_alerts() -> list[dict[str, Any]]:
    """Every operational alert (SLO burn-rate alerts are in rules.alert_rules)."""
    return [
        _replica_down(),
        _rank_down(),
        _kv_saturated(),
        _queue_growing(),
        _spec_collapse(),
        _redis_unreachable(),
        _router_down(),
        _autoscaler_capped(),
    ]
