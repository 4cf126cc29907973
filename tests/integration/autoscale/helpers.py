"""Steady client load for lifecycle tests (httpx threads, loopback only, bounded by stop)."""

from __future__ import annotations

import threading

import httpx

from tests.integration.router.helpers import chat_body


class SteadyLoad:
    """Clients sending short streaming requests until stopped; counts every outcome."""

    def __init__(self, url: str, model: str, clients: int = 4, max_tokens: int = 8) -> None:
        self.url, self.model, self.max_tokens = url, model, max_tokens
        self.statuses: list[int] = []
        self.served: list[str] = []
        self.cut = 0  # streams an engine failure ended with an SSE error event
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        body = chat_body(self.model, "steady", max_tokens=self.max_tokens, stream=True)
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                status, served = 599, ""
                try:
                    with client.stream("POST", self.url + "/v1/chat/completions", json=body) as r:
                        data = r.read()
                    if r.status_code == 200 and data.rstrip().endswith(b"data: [DONE]"):
                        status = 200
                    elif r.status_code == 200 and b'"upstream_error"' in data:
                        status, self.cut = 200, self.cut + 1
                    served = r.headers.get("x-glmctl-endpoint", "")
                except httpx.HTTPError:
                    pass
                self.statuses.append(status)
                self.served.append(served)

    def finish(self) -> tuple[int, int]:
        """(requests sent, failed). A stream cut mid-way by a crash is counted in `cut`,
        not as failed: it had started streaming."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        return len(self.statuses), sum(s != 200 for s in self.statuses)

    def mark(self) -> tuple[int, int, int]:
        """(sent, failed, cut) so far, to count one event's share."""
        return len(self.statuses), sum(s != 200 for s in self.statuses), self.cut
