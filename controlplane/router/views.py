"""An endpoint as a routing policy sees it: registry entry + load + in-flight counts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controlplane.router.policies import EndpointView
from controlplane.router.registry import EndpointInfo
from controlplane.router.state import LocalView


def endpoint_view(info: EndpointInfo, view: LocalView, own_inflight: int) -> EndpointView:
    """`own_inflight`: this worker's requests in flight to the endpoint; other routers'
    come from the shared view."""
    load = view.load.get(info.endpoint_id)
    inflight = own_inflight + view.others_inflight.get(info.endpoint_id, 0)
    return EndpointView(
        info.endpoint_id,
        info.url,
        info.model,
        inflight,
        load.running if load else 0,
        load.waiting if load else 0,
        load.kv_usage if load else 0.0,
        info.kind,
        info.role,
        info.capacity,
    )


def models_body(models: Iterable[str]) -> dict[str, Any]:
    """OpenAI's `GET /v1/models` answer."""
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": "glmctl"}
        for model in sorted(models)
    ]
    return {"object": "list", "data": data}
