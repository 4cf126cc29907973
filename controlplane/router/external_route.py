"""The request path to an external endpoint (router/external.py): its URL, its model name
and its own key on every request; a refused key or its rate limit is retried elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from controlplane.router.external import ExternalEndpoint, default_secrets_dir, resolve_key
from controlplane.router.proxy import Receive, Send, UpstreamFailed, forward
from controlplane.router.upstream import UpstreamPool

_PATHS = {"chat": "/chat/completions", "completions": "/completions"}
_REJECTED_KEY = (401, 403)
RETRY_STATUSES = (*_REJECTED_KEY, 429)  # not the client's fault: try another endpoint


@dataclass(frozen=True, slots=True)
class ExternalRoute:
    """How the request path reaches one external endpoint (holds its key, in memory)."""

    endpoint: ExternalEndpoint
    key: str | None = field(default=None, repr=False)  # never in a repr or a log line

    @property
    def header(self) -> bytes:
        """Extra request header lines (CRLF-terminated) for the upstream request."""
        if not self.key:
            return b""
        return b"authorization: Bearer " + self.key.encode("latin-1") + b"\r\n"

    def health_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}

    def url(self, route: str) -> str:
        return self.endpoint.base_url + _PATHS[route]

    @property
    def health_url(self) -> str:
        return self.endpoint.base_url + self.endpoint.health_path

    def body(self, body: bytes) -> bytes:
        """The request with `model` renamed to the endpoint's own model name."""
        payload = orjson.loads(body)
        payload["model"] = self.endpoint.upstream_model
        return orjson.dumps(payload)

    async def forward(
        self,
        pool: UpstreamPool,
        route: str,
        body: bytes,
        send: Send,
        tag: list[tuple[bytes, bytes]],
        receive: Receive,
    ) -> tuple[int, float, bool]:
        """`proxy.forward` to this endpoint: its URL, its model name, its key; a refused key
        or its own rate limit is a failure to retry elsewhere, not the client's answer."""
        url, upstream_body = self.url(route), self.body(body)
        return await forward(
            pool, url, upstream_body, send, tag, receive, self.header, RETRY_STATUSES
        )

    def explain(self, failure: UpstreamFailed) -> tuple[str, str]:
        """(for the operator: health record, log; for the client: the error message)."""
        if not failure.status:
            return str(failure), f"external endpoint `{self.endpoint.name}` did not answer"
        return self.failure(failure.status, True), self.failure(failure.status)

    def failure(self, status: int, for_operator: bool = False) -> str:
        """Why an answer with `status` (one of RETRY_STATUSES) is not passed to the client;
        `for_operator` (health records, status) also names where the key comes from."""
        name = self.endpoint.name
        if status not in _REJECTED_KEY:
            return f"external endpoint `{name}` is rate limiting (HTTP {status})"
        text = f"external endpoint `{name}` rejected the API key glmctl sent (HTTP {status})"
        if for_operator:
            text += f"; check the key its api_key names ({self.endpoint.key_ref})"
        return text


def routes(
    externals: tuple[ExternalEndpoint, ...], secrets_dir: str = ""
) -> dict[str, ExternalRoute]:
    """Endpoint id -> route, every key resolved (UserError on the first missing one)."""
    folder = Path(secrets_dir) if secrets_dir else default_secrets_dir()
    return {e.endpoint_id: ExternalRoute(e, resolve_key(e, folder)) for e in externals}
