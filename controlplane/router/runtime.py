"""What one router worker's request path (app.py) and its background loops (collector.py)
share: config, the Redis state adapter, HTTP sessions, the endpoint index and local health.

`RouterRuntime` holds it and opens/closes the I/O parts; `RouterApp` (app.py) extends it
with the request path and starts the loops of collector.py over it. collector.py depends on
this module only, so app.py -> collector.py is the one direction between the two.
"""

from __future__ import annotations

import time

import aiohttp

from controlplane.router.admission import Admission
from controlplane.router.config import RouterConfig
from controlplane.router.external_route import ExternalRoute, routes
from controlplane.router.metrics import RouterMetrics
from controlplane.router.registry import EndpointInfo
from controlplane.router.state import RedisState
from controlplane.router.upstream import UpstreamPool


class RouterRuntime:
    """One worker's shared router state; `open` before use, `close` when done."""

    def __init__(self, config: RouterConfig, router_id: str) -> None:
        self.config = config
        self.router_id = router_id
        self.metrics = RouterMetrics()
        self.inflight: dict[str, int] = {}
        self.local_down: dict[str, float] = {}  # endpoint -> monotonic time it may return
        self.state: RedisState | None = None
        self.session: aiohttp.ClientSession | None = None  # health and load probes
        self.pool: UpstreamPool | None = None  # the request path
        self.admission: Admission | None = None
        self.by_model: dict[str, list[EndpointInfo]] = {}
        self.externals: dict[str, ExternalRoute] = {}  # endpoint id -> route (holds its key)
        self.probe_failures: dict[str, int] = {}  # external endpoint -> failed probes in a row
        self.probe_after: dict[str, float] = {}  # external endpoint -> next probe (monotonic)

    async def open(self) -> None:
        """Open the probe session, the upstream pool and Redis; read the registry once."""
        config = self.config
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout, sock_read=config.read_timeout
        )
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        )
        self.pool = UpstreamPool(
            config.connect_timeout, config.read_timeout, config.limits.max_response_bytes
        )
        self.state = RedisState(config.redis_url, self.router_id, config.state)
        self.admission = Admission(config, self.state)
        self.externals = routes(config.external, config.secrets_dir)
        await self.state.refresh({})
        self.reindex()

    async def close(self) -> None:
        """Close what `open` opened (safe after a partial `open`)."""
        if self.session is not None:
            await self.session.close()
        if self.pool is not None:
            self.pool.close()
        if self.state is not None:
            await self.state.close()

    def reindex(self) -> None:
        """Rebuild model -> endpoints after the view changed."""
        assert self.state is not None
        by_model: dict[str, list[EndpointInfo]] = {}
        for info in sorted(self.endpoints().values(), key=lambda i: i.endpoint_id):
            by_model.setdefault(info.model, []).append(info)
        self.by_model = by_model

    def endpoints(self) -> dict[str, EndpointInfo]:
        """Registered endpoints, with this config's external ones even while Redis is down."""
        assert self.state is not None
        known = dict(self.state.view.endpoints)
        for endpoint_id, route in self.externals.items():
            known[endpoint_id] = route.endpoint.info()
        return known

    def is_healthy(self, endpoint_id: str) -> bool:
        """False while this worker took it out after a failure, else the shared health."""
        assert self.state is not None
        down_until = self.local_down.get(endpoint_id)
        if down_until is not None and time.monotonic() < down_until:
            return False
        return self.state.view.healthy.get(endpoint_id, True)
