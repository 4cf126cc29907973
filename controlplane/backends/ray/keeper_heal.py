"""What the embedded cluster's keeper repairs while it runs: its Redis and lost nodes.

- Redis exited (crashed, or restarted by an operator who stopped it): the keeper starts it
  again on the same port with the same password, so every router, replica and the
  autoscaler reconnects to the URL it already has. Redis keeps no files (router state is
  soft state), so what only a one-off command writes is copied every `SNAPSHOT_S` and put
  back (`durable_keys`): deployment records, router URLs, restart failures and a report
  that stopped them, API keys.
  The rest comes back by itself: routers re-seed the endpoints and draining marks they
  knew (router/state.py), replicas re-publish their own records at their next health check
  (serve_app.py), load and health are scraped again.
- A simulated node's raylet exited (the node was lost): the keeper removes what is left of
  it and adds a node of the same shape, as a cloud autoscaler replaces a lost VM, so the
  replica that had a rank there can be replaced as a unit. The head node (it holds the
  GCS) is not replaced: its loss ends the cluster.
"""

from __future__ import annotations

from typing import Any

SNAPSHOT_S = 1.0


def durable_keys(deployments: set[str]) -> list[str]:
    """Keys no running process writes again after Redis lost them (written by apply,
    delete, `glmctl keys`), for the recorded deployments: found by name, never by a SCAN
    over the whole keyspace (which holds every session binding)."""
    from controlplane.store.redis import (
        DEPLOYMENT_KEY,
        FAILURES_KEY,
        ROUTER_KEY,
        STOPPED_KEY,
        router_namespace,
    )
    from controlplane.store.redis import DEPLOYMENTS_KEY as DEPLOYMENTS

    keys = [DEPLOYMENTS, "glmctl:apikeys"]
    for name in sorted(deployments):
        keys += [
            DEPLOYMENT_KEY.format(name=name),
            ROUTER_KEY.format(name=name),
            FAILURES_KEY.format(name=name),
            STOPPED_KEY.format(name=name),
            f"{router_namespace(name)}:apikeys",
        ]
    return keys


class DurableKeys:
    """The last copy of the durable keys (Redis DUMP payloads), restored after a restart.

    A key deleted less than `SNAPSHOT_S` before Redis went down comes back with the copy."""

    def __init__(self) -> None:
        self.payloads: dict[str, bytes] = {}
        self.taken_at = 0.0

    def due(self, now: float) -> bool:
        return now - self.taken_at >= SNAPSHOT_S

    def take(self, client: Any, now: float) -> None:
        """Copy every durable key (a failed read keeps the previous copy)."""
        from controlplane.backends.ray.records import DEPLOYMENTS

        names = {n.decode() if isinstance(n, bytes) else n for n in client.smembers(DEPLOYMENTS)}
        keys = durable_keys(names)
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        payloads = dict(zip(keys, pipe.execute(), strict=True))
        self.payloads = {k: v for k, v in payloads.items() if v is not None}
        self.taken_at = now

    def restore(self, client: Any) -> int:
        """Put the copies back where missing (a key written since wins); how many."""
        pipe = client.pipeline(transaction=False)
        for key, payload in self.payloads.items():
            pipe.restore(key, 0, payload)
        results = pipe.execute(raise_on_error=False)
        return sum(not isinstance(r, Exception) for r in results)


def restart_redis(redis: Any, durable: DurableKeys, timeout: float = 10.0) -> Any:
    """A new LocalRedis on the dead one's port and password, durable keys restored."""
    from controlplane.local.redis_server import LocalRedis
    from controlplane.store.redis import sync_client

    redis.stop()  # reaps the exited process, removes its folder
    fresh = LocalRedis.start(port=redis.port, timeout=timeout, password_file=redis.password_file)
    client = sync_client(fresh.url)
    try:
        restored = durable.restore(client)
    finally:
        client.close()
    print(f"keeper: redis restarted on port {fresh.port}, {restored} key(s) restored", flush=True)
    return fresh


def lost_nodes(worker_nodes: Any) -> list[Any]:
    """Worker nodes (ray._private.node.Node) one of whose processes exited."""
    return [node for node in list(worker_nodes) if node.dead_processes()]


def raylet_pid(node: Any) -> int | None:
    """The pid of a node's raylet (what an operator stops to take the node down)."""
    from ray._private import ray_constants

    infos = node.all_processes.get(ray_constants.PROCESS_TYPE_RAYLET, [])
    return int(infos[0].process.pid) if infos else None
