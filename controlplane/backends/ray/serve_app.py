"""Ray Serve applications built from a plan: engine groups and the router host.

`EngineGroup` replica = one model instance. Its placement group has one bundle per node;
the replica starts one `RankWorker` per bundle (node rank = bundle index), starts the
engine in each (rank 0 first reserves the HTTP and rendezvous ports every rank needs),
waits until rank 0 answers `/health`, registers the endpoint with the router's registry
in Redis and records where its ranks run. On shutdown it deregisters, drains, stops.

`RouterHost` runs the router processes (controlplane.router) on the head node: clients
talk to the router, the router to the engines; Serve's own HTTP proxy is not on the path.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from controlplane.backends.ray.workers import RankWorker
from controlplane.planner.models import DeploymentPlan
from controlplane.store.redis import (  # key names live in store/redis.py (re-exported)
    FAILURES_KEY,
    REPLICAS_KEY,
    ROUTER_KEY,
    STOPPED_KEY,
    router_namespace,
    sync_client,
)

HEALTH_POLL_S = 0.2
ROUTER_START_TIMEOUT_S = 20.0
UNHEALTHY_CHECKS = 3  # consecutive failed /health answers before Serve replaces a replica
# Restarts stopped: a new replica waits this long for `glmctl apply` to clear the report
# before it refuses (Serve retries a failed replica at once: one cheap try a minute).
STOPPED_WAIT_S = 60.0


def rank_values(rank0: dict[str, str], mine: dict[str, str]) -> dict[str, str]:
    """Placeholder values of one rank: its own host and port, rank 0's rendezvous."""
    return {**rank0, "host": mine["host"], "port": mine["port"]}


def _redis(url: str) -> Any:
    return sync_client(url)


class EngineGroup:
    """The engine-group deployment (options come from the plan, see `engine_app`)."""

    def __init__(
        self,
        plan: dict[str, Any],
        redis_url: str,
        app_name: str,
        log_dir: str,
        group: str = "",
        *peers: Any,
    ) -> None:
        """`group`: the engine group (PD pool) this deployment runs; "" the plan's only one.
        `peers`: the app's other deployments (Serve's one ingress binds them; unused)."""
        from ray import serve

        from controlplane.backends.ray.pd_replica import replica_label

        self.plan = DeploymentPlan.model_validate(plan)
        self.group = next((g for g in self.plan.groups if g.name == group), self.plan.group)
        self.redis_url = redis_url
        self.app_name = app_name
        context = serve.get_replica_context()
        unique = str(getattr(context.replica_id, "unique_id", context.replica_id))
        self.replica_id = replica_label(self.group, unique)
        self.bootstrap_port = 0
        self.endpoint_id = f"{app_name}/{self.replica_id}"
        self.workers: list[Any] = []
        self.url = ""
        self.started = time.time()
        self.failed_checks = 0
        self.failed = False
        self._back_off()
        try:
            self._start_ranks(log_dir)
            self._wait_healthy()
            self._register()
        except BaseException as exc:
            from controlplane.backends.ray.failures import first_cause

            self._record_failure(first_cause(str(exc)) or type(exc).__name__)
            self._stop_ranks()
            raise

    def _back_off(self) -> None:
        """Wait before starting again after recent failures. After too many, latch the
        report (first cause) and start nothing: wait up to STOPPED_WAIT_S for `glmctl
        apply` to clear it (then start at once), else refuse (Serve tries again later)."""
        from controlplane.autoscale.restarts import StoppedRestarts, parse_failure, restart_verdict

        name = self.plan.name
        stopped_key = STOPPED_KEY.format(name=name)
        client = _redis(self.redis_url)
        try:
            latched = client.get(stopped_key)
            if latched:
                verdict: float | StoppedRestarts = StoppedRestarts.from_json(latched)
            else:
                entries = client.lrange(FAILURES_KEY.format(name=name), 0, -1)
                verdict = restart_verdict([parse_failure(e) for e in entries], time.time())
            if isinstance(verdict, StoppedRestarts):
                client.set(stopped_key, verdict.to_json(), nx=True)
                deadline = time.monotonic() + STOPPED_WAIT_S
                while client.exists(stopped_key):
                    if time.monotonic() > deadline:
                        raise RuntimeError(verdict.message(name))
                    time.sleep(1.0)
                return  # an apply cleared the report and the failures: start now
        finally:
            client.close()
        time.sleep(verdict)

    def _record_failure(self, cause: str) -> None:
        """One failure with its cause, for the backoff and the report (Redis down: lost)."""
        from controlplane.autoscale.restarts import failure_entry

        with contextlib.suppress(Exception):
            client = _redis(self.redis_url)
            try:
                key = FAILURES_KEY.format(name=self.plan.name)
                client.rpush(key, failure_entry(time.time(), cause))
                client.ltrim(key, -20, -1)
            finally:
                client.close()

    def _fail(self, reason: str) -> RuntimeError:
        """Out of every router's rotation at once, failure recorded for the restart backoff."""
        from controlplane.autoscale.drain import Drainer

        self.failed = True
        client = _redis(self.redis_url)
        try:
            Drainer(client, router_namespace(self.plan.name), self.endpoint_id).mark()
        except Exception:  # Redis down: Serve still replaces the replica
            pass
        finally:
            client.close()
        self._record_failure(reason)
        return RuntimeError(reason)

    def _start_ranks(self, log_dir: str) -> None:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from controlplane.backends.ray.pd_replica import bootstrap_port

        group = self.group
        pg = ray.util.get_current_placement_group()
        if pg is None:
            raise RuntimeError("the replica has no placement group (placement_group_bundles unset)")
        actor = ray.remote(RankWorker)
        for rank, bundle in enumerate(group.bundles):
            strategy = PlacementGroupSchedulingStrategy(
                placement_group=pg, placement_group_bundle_index=rank
            )
            self.workers.append(
                actor.options(
                    num_cpus=group.worker_actor.get("CPU", 1.0),
                    num_gpus=bundle.get("GPU", 0.0),
                    scheduling_strategy=strategy,
                ).remote(self.plan.name, self.replica_id, rank, log_dir)
            )
        self.ranks = ray.get([w.node.remote() for w in self.workers])
        # Each rank binds its own node's address and port ({host}/{port}); only the
        # rendezvous ({dist_host}/{dist_port}) is rank 0's for all of them.
        from controlplane.engines.kv_events_args import plan_feed_count

        self.kv_ranks = plan_feed_count(self.plan, group)  # KV-event feeds rank 0 publishes
        own = ray.get([w.reserve.remote(self.kv_ranks if i == 0 else 0)
                       for i, w in enumerate(self.workers)])  # fmt: skip
        self.values = own[0]
        values = own[0]
        self.url = f"http://{values['host']}:{values['port']}"
        self.bootstrap_port = bootstrap_port(group, values)
        starts = [
            w.start.remote(list(r.argv), dict(r.env), rank_values(values, mine))
            for w, r, mine in zip(self.workers, group.ranks, own, strict=True)
            if r.argv
        ]
        ray.get(starts)

    def _wait_healthy(self) -> None:
        import ray

        timeout = self.group.health.startup_timeout_s
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = ray.get([w.alive.remote() for w in self.workers])
            if not all(alive):
                rank = alive.index(False)
                reason = ray.get(self.workers[rank].failure.remote())
                raise RuntimeError(f"engine exited before it was healthy: {reason}")
            if ray.get(self.workers[0].healthy.remote()):
                return
            time.sleep(HEALTH_POLL_S)
        reason = ray.get(self.workers[0].failure.remote())
        raise RuntimeError(f"engine not healthy after {timeout:.0f} s: {reason}")

    def _register(self) -> None:
        from controlplane.engines import metrics_flavor
        from controlplane.engines.kv_events_args import feed_urls
        from controlplane.router.registry import EndpointInfo, register_info

        group = self.group
        feeds = feed_urls(self.values, self.kv_ranks) if self.kv_ranks else ((), ())
        info = EndpointInfo(
            self.endpoint_id,
            self.url,
            group.served_model_name,
            group=self.app_name,
            flavor=metrics_flavor(group.flavor),
            pd=group.pd,  # a PD pool's replica: its role and KV handshake port
            bootstrap_port=self.bootstrap_port,
            kv_events=feeds[0],
            kv_replay=feeds[1],
            engine_id=f"{self.replica_id}@{self.started:.3f}" if self.kv_ranks else "",
        )
        register_info(self.redis_url, info, namespace=router_namespace(self.plan.name))
        client = _redis(self.redis_url)
        try:
            client.hset(
                REPLICAS_KEY.format(name=self.plan.name), self.replica_id, json.dumps(self.info())
            )
        finally:
            client.close()

    def info(self) -> dict[str, Any]:
        """Where this replica's ranks run, its endpoint, its version."""
        return {
            "replica_id": self.replica_id,
            "app": self.app_name,
            "version": self.plan.digest(),
            "url": self.url,
            **self._pd_info(),
            "ranks": self.ranks,
            "started_at": self.started,
        }

    def _pd_info(self) -> dict[str, Any]:
        """A PD pool's replica record says its pool and KV port (colocated: nothing)."""
        if not self.group.pd:
            return {}
        return {"pd": self.group.pd, "bootstrap_port": self.bootstrap_port}

    def check_health(self) -> None:
        """Serve's periodic check: fails at once when an engine process exited, and after
        `UNHEALTHY_CHECKS` slow or failed `/health` answers in a row (a busy engine on a
        loaded machine is not a dead one; replacing it would drop it from the router)."""
        import ray

        if self.failed:
            raise RuntimeError("this replica failed; Serve replaces it")
        try:
            alive = ray.get([w.alive.remote() for w in self.workers], timeout=30)
        except Exception as exc:  # a worker actor died, or the node of a rank was lost
            raise self._fail(f"a rank of this replica is gone: {type(exc).__name__}") from exc
        if not all(alive):
            raise self._fail(self._exit_cause(alive.index(False)))
        if ray.get(self.workers[0].healthy.remote()):
            self.failed_checks = 0
            self._republish()
            return
        self.failed_checks += 1
        if self.failed_checks >= UNHEALTHY_CHECKS:
            raise self._fail(
                f"engine at {self.url} did not answer /health {self.failed_checks} times in a row"
            )

    def _exit_cause(self, rank: int) -> str:
        """One line on why a rank's engine exited: its exit code and log's last error."""
        import ray

        from controlplane.backends.ray.failures import first_cause

        try:
            return first_cause(ray.get(self.workers[rank].failure.remote(), timeout=10))
        except Exception:
            return f"the engine process of rank {rank} exited"

    def _republish(self) -> None:
        """Register again when Redis lost this replica's records (it restarted empty: it
        keeps no files); the routers re-seed the endpoint too. Redis down: next check."""
        with contextlib.suppress(Exception):
            client = _redis(self.redis_url)
            try:
                if client.hexists(REPLICAS_KEY.format(name=self.plan.name), self.replica_id):
                    return
            finally:
                client.close()
            self._register()

    async def __call__(self, request: Any = None) -> dict[str, Any]:
        return self.info()

    def _stop_ranks(self) -> None:
        import ray

        for worker in self.workers:
            with contextlib.suppress(Exception):  # gone already: pdeathsig stopped its process
                ray.get(worker.stop.remote(), timeout=20)
                ray.kill(worker)
        self.workers = []

    def __del__(self) -> None:
        """Leave without failing requests (autoscale/drain.py): wait for a peer, out of the
        routers' rotation, in-flight requests finish (up to the drain timeout), deregister,
        stop. A failed replica leaves at once."""
        if not hasattr(self, "plan"):
            return
        with contextlib.suppress(Exception):  # Redis or a worker may be gone: stop anyway
            self._drain()
        self._stop_ranks()

    def _drain(self) -> None:
        import ray

        from controlplane.autoscale.drain import Drainer
        from controlplane.router.registry import deregister_endpoint

        namespace = router_namespace(self.plan.name)
        client = _redis(self.redis_url)
        try:
            drainer = Drainer(client, namespace, self.endpoint_id)
            if self.failed or not self.url:
                drainer.mark()
            else:
                from controlplane.autoscale.pd_drain import engine_idle

                drain_s = self.group.graceful_shutdown_s
                # A PD replica stays until its KV transfers are done (colocated: at once).
                idle = engine_idle(f"{self.url}/metrics", self.group.flavor, self.group.pd)
                report = drainer.drain(drain_s, engine_idle=idle)
                remaining = max(1.0, drain_s - report.drain_s)
                flavor = self.group.flavor
                ray.get(self.workers[0].drain.remote(remaining, flavor), timeout=remaining + 5)
            deregister_endpoint(self.redis_url, self.endpoint_id, namespace=namespace)
            client.hdel(REPLICAS_KEY.format(name=self.plan.name), self.replica_id)
        finally:
            client.close()


class RouterHost:
    """Runs one deployment's router processes; Serve restarts it if they die.

    The router (controlplane.router) runs as its own process group that dies with this
    replica (PR_SET_PDEATHSIG) and is stopped as a group, so no router worker outlives it.
    """

    def __init__(
        self, redis_url: str, router: dict[str, Any], name: str, port: int, host: str = ""
    ) -> None:
        """`host`: the address to listen on; empty: this node's own address (a cluster
        given by --address: reachable from other hosts). The URL clients use is published
        in Redis (`ROUTER_KEY`), so `glmctl` learns it wherever it runs."""
        import sys
        from dataclasses import replace

        import ray

        from controlplane.backends.ray.workers import _die_with_parent
        from controlplane.engines import EngineProcess, LaunchCommand
        from controlplane.router.config import RouterConfig
        from controlplane.router.external import ExternalEndpoint
        from controlplane.router.limits import RequestLimits
        from controlplane.router.state import StateConfig

        node = ray.util.get_node_ip_address()
        bind = host or node
        config = RouterConfig(
            redis_url=redis_url,
            host=bind,
            port=port,
            workers=router["processes"],
            policy=router["policy"],
            max_queue_per_endpoint=router["max_queue_per_endpoint"],
            session_header=router["session_header"],
            state=replace(StateConfig(), namespace=router_namespace(name)),
            auth=router.get("auth", "auto"),
            limits=RequestLimits.from_dict(router.get("limits")),
            external=tuple(ExternalEndpoint.from_dict(e) for e in router.get("external", ())),
            overflow_at=int(router.get("overflow_at", 0)),
            models=tuple(router.get("models", ())),
            precise=str(router.get("precise", "")),
        )
        argv = (sys.executable, "-m", "controlplane.router", *config.cli_args())
        self.url = f"http://{node if bind == '0.0.0.0' else bind}:{config.port}"
        self.process = EngineProcess(LaunchCommand(argv, config.child_env()), self.url)
        self.process.start(preexec=_die_with_parent)
        deadline = time.monotonic() + ROUTER_START_TIMEOUT_S
        while not self.process.healthy(timeout=1.0):
            if time.monotonic() > deadline or not self.process.alive():
                self.process.stop()
                raise RuntimeError(
                    f"router did not answer on {self.url}/health in {ROUTER_START_TIMEOUT_S:.0f} s"
                    f" (exit code {self.process.exit_code()}); is port {port} free?"
                )
            time.sleep(HEALTH_POLL_S)
        self.redis_url, self.name = redis_url, name
        client = _redis(redis_url)
        try:
            client.set(ROUTER_KEY.format(name=name), self.url)
        finally:
            client.close()

    def check_health(self) -> None:
        """Fails when the router processes exited; publishes the router's URL again when
        Redis lost it (restarted empty)."""
        if not self.process.alive():
            raise RuntimeError("router processes exited")
        with contextlib.suppress(Exception):
            client = _redis(self.redis_url)
            try:
                client.set(ROUTER_KEY.format(name=self.name), self.url, nx=True)
            finally:
                client.close()

    async def __call__(self, request: Any = None) -> str:
        return self.url

    def __del__(self) -> None:
        process = getattr(self, "process", None)
        if process is not None:
            process.stop()
