"""Request validation (pure): 400 with a message that says what to fix; 404
`model_not_found` for a model no endpoint is registered for (as OpenAI answers), unless the
deployment serves that model and none of its replicas is registered yet (starting, or a
one-replica update between versions): 503 with Retry-After, which clients retry."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson

from controlplane.catalog.image_input import image_parts, part_problem


class RequestProblem(Exception):
    """A request the router refuses; `status` and `message` go back to the client, `kind`
    as the error's `type` and `code` as its `code` (the status when None)."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.retry_after = retry_after


def validate(
    body: bytes, route: str, served: Mapping[str, Any], expected: Collection[str] = ()
) -> dict[str, Any]:
    """The parsed body of a `chat` or `completions` request, or RequestProblem: 400 for a
    malformed request, 404 `model_not_found` when no endpoint serving its model is
    registered (`served`: model -> endpoints, healthy or not; a known model whose endpoints
    are all out is the caller's 503), 503 when the model is one the deployment serves
    (`expected`) but no replica of it is registered yet."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestProblem(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise RequestProblem(400, "request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise RequestProblem(400, "missing `model`; GET /v1/models lists the served ones")
    if model not in served and model in expected:
        raise RequestProblem(
            503,
            f"no replica of `{model}` is registered yet (starting, or between versions);"
            " retry shortly",
            "service_unavailable",
            retry_after=1.0,
        )
    if model not in served:
        known = f"served: {', '.join(sorted(served))}" if served else "none is registered yet"
        raise RequestProblem(
            404,
            f"model `{model}` is not served here; {known} (GET /v1/models lists them)",
            code="model_not_found",
        )
    if route == "chat":
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestProblem(400, "missing `messages`: a non-empty list of {role, content}")
        if not all(isinstance(m, dict) and "role" in m for m in messages):
            raise RequestProblem(400, "every entry of `messages` needs a `role`")
        for part in image_parts(payload):  # passed on unchanged; only their form is checked
            problem = part_problem(part)
            if problem is not None:
                raise RequestProblem(400, problem)
    elif payload.get("prompt") in (None, "", []):
        raise RequestProblem(400, "missing `prompt`")
    if not isinstance(payload.get("stream", False), bool):
        raise RequestProblem(400, "`stream` must be true or false")
    return payload
