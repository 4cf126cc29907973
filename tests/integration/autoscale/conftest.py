"""Router fixtures reused: real Redis, simulated engines, router processes on loopback."""

from tests.integration.router.conftest import cluster_factory, topo

__all__ = ["cluster_factory", "topo"]
