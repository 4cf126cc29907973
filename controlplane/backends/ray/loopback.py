"""Environment that keeps an embedded Ray cluster and its drivers on 127.0.0.1.

Facts from shared/reference/ray-on-one-machine.md: with
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` Ray's node-IP lookup returns 127.0.0.1 (plain
`ray start` would advertise the network interface's address); `RAY_TMPDIR` must be set;
usage stats off. These are values glmctl *sets* for Ray (settings.py stays the only
place that *reads* the environment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

LOOPBACK = "127.0.0.1"
NAMESPACE = "glmctl"  # Ray namespace of glmctl's Serve apps and actors


def ray_environment(tmpdir: Path | None = None) -> dict[str, str]:
    """Variables for any process that starts or joins the embedded cluster."""
    env = {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_DEDUP_LOGS": "0",
        # Ray's default niceness 15 halves HTTP throughput on a busy 2-core machine.
        "RAY_worker_niceness": "0",
        "RAY_SERVE_LOG_TO_STDERR": "0",
        # A node whose raylet exited is declared dead after about 3 s, not Ray's 15 s
        # (3 s x 5 misses), so the replica with a rank there is replaced sooner.
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_failure_threshold": "3",
    }
    if tmpdir is not None:
        env["RAY_TMPDIR"] = str(tmpdir)
    return env


def apply_environment(env: Mapping[str, str]) -> None:
    """Put `env` into this process's environment (before `import ray`)."""
    os.environ.update(env)
