"""A Redis that glmctl starts on the head of a cluster given by --address, when
GLMCTL_REDIS_URL is not set.

It runs under a detached, named Ray actor on the head (`glmctl-redis` in glmctl's Ray
namespace), so every later glmctl command, from any machine that reaches the cluster,
finds the same one. It listens on the head's own address with a random password (given to
redis-server on its standard input, so it shows in no process list), and dies with the
actor. The routers, the engines and glmctl get its URL from the actor.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from typing import Any

from controlplane.backends.ray.loopback import NAMESPACE

ACTOR_NAME = "glmctl-redis"
START_TIMEOUT_S = 60.0


class HeadRedis:
    """Plain class; `ray.remote(HeadRedis)` makes the actor (see `head_redis_url`)."""

    def __init__(self) -> None:
        import ray

        from controlplane.backends.ray.workers import _die_with_parent
        from controlplane.local.ports import free_port, wait_port

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed on the head node")
        host = ray.util.get_node_ip_address()
        port = free_port(host)
        password = secrets.token_hex(16)
        config = (
            f"bind {host}\nport {port}\nrequirepass {password}\nsave ''\nappendonly no\n"
            f"dir {tempfile.mkdtemp(prefix='glmctl-redis-')}\n"
        )
        self.process = subprocess.Popen(
            [binary, "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(config.encode())
        self.process.stdin.close()
        if not wait_port(port, host=host, timeout=20):
            self.process.kill()
            raise RuntimeError(f"redis-server did not start on {host}:{port}")
        self._url = f"redis://:{password}@{host}:{port}/0"

    def url(self) -> str:
        return self._url


def head_redis_url() -> str:
    """The URL of glmctl's Redis on the head, started on first use (connected driver)."""
    import ray

    from controlplane.errors import UserError

    actor: Any = (
        ray.remote(HeadRedis)
        .options(
            name=ACTOR_NAME,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            resources={"node:__internal_head__": 0.001},
        )
        .remote()
    )
    try:
        return str(ray.get(actor.url.remote(), timeout=START_TIMEOUT_S))
    except Exception as exc:
        why = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"glmctl could not start its Redis on the cluster's head ({why}).",
            fix="install redis-server on the head, or set GLMCTL_REDIS_URL to a Redis that"
            " the cluster and this machine both reach.",
        ) from exc
