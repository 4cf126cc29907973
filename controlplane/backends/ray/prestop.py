"""`python -m controlplane.backends.ray.prestop DEPLOYMENT`: a Kubernetes preStop hook.

Before Kubernetes stops a Ray worker pod (node drain, eviction, scale-down), the replicas
with a rank on this pod leave every router's rotation and their streams finish: for each,
the steps of autoscale/drain.py (wait for a peer, mark draining in Redis, wait until no
router has a request in flight to it), bounded by `--timeout`. Serve's own graceful
shutdown then finds nothing left to wait for. The replicas are found in the deployment's
replica records (store/redis.py REPLICAS_KEY: each rank's host), by this pod's address.

Always exits 0 (a failing preStop hook only delays the pod's stop); what it did goes to
stderr, which Kubernetes shows in the pod's events when the hook fails.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from dataclasses import dataclass

from controlplane.autoscale.drain import PEER_WAIT_S, Drainer, DrainReport
from controlplane.store.redis import REPLICAS_KEY, describe, router_namespace, sync_client


@dataclass(frozen=True)
class Drained:
    endpoint_id: str
    report: DrainReport


def endpoints_on(records: dict[str, str], host: str) -> list[str]:
    """Endpoint ids (`app/replica`) of the replicas with a rank on `host` (pure)."""
    found = []
    for raw in records.values():
        info = json.loads(raw)
        if any(rank.get("host") == host for rank in info.get("ranks", [])):
            found.append(f"{info['app']}/{info['replica_id']}")
    return sorted(found)


def drain_host(
    client: object,
    deployment: str,
    host: str,
    timeout: float,
    peer_wait_s: float = PEER_WAIT_S,
    namespace: str = "",
) -> list[Drained]:
    """Drain every replica of `deployment` with a rank on `host`, within `timeout` in all;
    `namespace`: the routers' Redis namespace (default: the deployment's)."""
    raw = client.hgetall(REPLICAS_KEY.format(name=deployment))  # type: ignore[attr-defined]
    records = {_text(k): _text(v) for k, v in raw.items()}
    deadline = time.monotonic() + timeout
    done = []
    for endpoint_id in endpoints_on(records, host):
        left = max(0.0, deadline - time.monotonic())
        drainer = Drainer(client, namespace or router_namespace(deployment), endpoint_id)
        report = drainer.drain(left, engine_idle=lambda: True, peer_wait_s=min(peer_wait_s, left))
        done.append(Drained(endpoint_id, report))
    return done


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pod_address() -> str:
    # Ray's node address in a pod is the pod IP, which the pod's own hostname resolves to.
    return socket.gethostbyname(socket.gethostname())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane.backends.ray.prestop")
    parser.add_argument("deployment")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds in all")
    parser.add_argument("--host", default="", help="this node's address (default: the pod IP)")
    parser.add_argument("--redis-url", default="", help="default: GLMCTL_REDIS_URL")
    parser.add_argument("--namespace", default="", help="default: the deployment's")
    parser.add_argument("--peer-wait", type=float, default=PEER_WAIT_S, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    url = ""
    try:
        from controlplane.settings import get_settings

        url = get_settings().redis_url_with_password(args.redis_url or None) or ""
        if not url:
            print("prestop: no GLMCTL_REDIS_URL; nothing drained", file=sys.stderr)
            return 0
        client = sync_client(url)
        try:
            host = args.host or _pod_address()
            done = drain_host(
                client, args.deployment, host, args.timeout, args.peer_wait, args.namespace
            )
        finally:
            client.close()
    except Exception as exc:  # a hook never fails the pod's stop; say why it did nothing
        print(f"prestop: drain skipped: {describe(url, exc)}", file=sys.stderr)
        return 0
    for item in done:
        r = item.report
        print(
            f"prestop: {item.endpoint_id} drained in {r.drain_s:.1f} s"
            f" (peer wait {r.peer_wait_s:.1f} s, {r.left_in_flight} left in flight)",
            file=sys.stderr,
        )
    if not done:
        print(f"prestop: no replica of {args.deployment} on {host}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
