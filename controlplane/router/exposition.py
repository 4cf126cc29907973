"""`GET /metrics` of a router.

/metrics: every live worker's metrics (merged through Redis) plus the autoscaler's numbers
for the deployment this router serves.

Autoscaler gauges and counters (the metrics contract dashboards and alerts use):
  glmctl_autoscale_desired_replicas{deployment}   replicas the policy asks for
  glmctl_autoscale_running_replicas{deployment}   replicas serving (registered, not draining)
  glmctl_autoscale_max_replicas{deployment}       replicas the cluster holds (plan bound)
  glmctl_autoscale_overflow_inflight{deployment}  requests on overflow endpoints (local demand)
  glmctl_autoscale_decisions_total{deployment,direction,reason}  scaling actions taken
"""

from __future__ import annotations

from typing import Any

from controlplane.router.metrics import RouterMetrics, merge, render
from controlplane.router.proxy import Send
from controlplane.router.responses import send_text
from controlplane.router.state import RedisState

_GAUGES = {
    "glmctl_autoscale_desired_replicas": ("desired", "Replicas the autoscaling policy asks for."),
    "glmctl_autoscale_running_replicas": ("running", "Replicas serving (not draining)."),
    "glmctl_autoscale_max_replicas": ("max", "Replicas the cluster holds (the plan's bound)."),
    "glmctl_autoscale_overflow_inflight": (
        "overflow_inflight",
        "Requests in flight to overflow endpoints, counted as local replicas' demand.",
    ),
}


def render_autoscale(decisions: dict[str, Any], counts: dict[str, float]) -> str:
    """Prometheus text of the autoscaler's last decisions and decision counters (pure)."""
    lines: list[str] = []
    for name, (field, help_text) in _GAUGES.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines += [
            f'{name}{{deployment="{deployment}"}} {float(record.get(field, 0))}'
            for deployment, record in sorted(decisions.items())
        ]
    name = "glmctl_autoscale_decisions_total"
    lines += [f"# HELP {name} Scaling actions taken, by direction and reason.",
              f"# TYPE {name} counter"]  # fmt: skip
    for key, value in sorted(counts.items()):
        deployment, direction, reason = [*key.split("|"), "", ""][:3]
        labels = f'deployment="{deployment}",direction="{direction}",reason="{reason}"'
        lines.append(f"{name}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"


async def send_metrics(
    send: Send,
    state: RedisState | None,
    metrics: RouterMetrics,
    inflight: dict[str, int],
    router_id: str,
    extra: str = "",
) -> None:
    """Answer `/metrics`: this worker's metrics merged with the other live workers'."""
    exports = [metrics.export(inflight)]
    decisions: dict[str, Any] = {}
    counts: dict[str, float] = {}
    if state is not None:
        others = await state.all_metrics() or []
        exports += [e for e in others if e.get("router") != router_id]
        decisions, counts = await state.autoscale_records()
    text = render(merge(exports)) + render_autoscale(decisions, counts) + extra
    await send_text(send, text, b"text/plain; version=0.0.4")
