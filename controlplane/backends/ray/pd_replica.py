"""What a replica of a PD pool adds to a colocated one (pure): its label, its KV port.

A replica of a prefill/decode (PD) plan's pool is labelled `<pool>-<Serve replica id>`
(`prefill-abc123`), so its endpoint id, its Redis replica record and the `replica` label
Prometheus scrapes it under all say which pool it serves (`glmctl status` and `top`
group by it). It registers the port its KV handshake listens on (EndpointInfo
`bootstrap_port`): the free port the rank worker put in for `{bootstrap_port}` (SGLang's
`--disaggregation-bootstrap-port`, vLLM's VLLM_NIXL_SIDE_CHANNEL_PORT), or, for a
simulated prefill replica, its HTTP port (the simulator serves the bootstrap there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.engines.base import BOOTSTRAP_PORT
from controlplane.planner.models import DeploymentPlan, EngineGroupPlan


def replica_label(group: EngineGroupPlan, replica_id: str) -> str:
    """`replica_id` as this group's replicas are known: `<pool>-<id>` in a PD plan."""
    return f"{group.pd}-{replica_id}" if group.pd else replica_id


def bootstrap_port(group: EngineGroupPlan, values: Mapping[str, str]) -> int:
    """The KV handshake port a replica of `group` registers (0: none), from the run-time
    values its rank 0 was started with (`RankWorker.reserve`)."""
    if not group.pd or not group.ranks:
        return 0
    rank0 = group.ranks[0]
    text = " ".join((*rank0.argv, *rank0.env.values()))
    if BOOTSTRAP_PORT in text:
        return int(values["bootstrap_port"])
    if group.simulated and group.pd == "prefill":
        return int(values["port"])
    return 0


def group_of(plan: DeploymentPlan, replica: Mapping[str, Any]) -> EngineGroupPlan:
    """The group a replica record (serve_app.py `EngineGroup.info`) belongs to."""
    pd = str(replica.get("pd", ""))
    return next((g for g in plan.groups if g.pd == pd), plan.group)


def pools_view(plan: DeploymentPlan, replicas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`glmctl status` of a PD deployment's pools: per pool its group, its serving and
    applied replicas (empty for a colocated plan)."""
    return [
        {
            "pool": group.pd,
            "group": group.name,
            "serving": sum(1 for r in replicas if r.get("pd") == group.pd),
            "desired": group.replicas.initial,
            "gpus_per_replica": group.nodes * group.gpus_per_node,
        }
        for group in plan.groups
        if group.pd
    ]
