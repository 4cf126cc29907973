"""glmctl's policy inside Ray Serve, through Serve's custom autoscaling policy API.

Why the policy API and not the external scaler: requests go client -> router -> engine
around Serve, so Serve's own request counts are zero; but a class policy runs in the Serve
controller and may read anything, here the routers' Redis snapshots. Serve then still owns
the replica lifecycle (placement, start, graceful shutdown, restarts, the controller's own
fault tolerance), and no extra glmctl process has to stay alive to keep scaling. The
external scaler (`external_scaler_enabled`) would need such a process and excludes
`autoscaling_config` (operations-anchors.md, A).

Serve calls the policy every 0.1 s; it reads Redis every `poll_s` and answers the last
decision in between. Serve's own delays are set to 0 (see `serve_autoscaling_config`): the
stabilisation windows and cooldowns are glmctl's (policy.py); Serve only clamps to
[min, max] and to what the cluster can place.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from controlplane.autoscale.policy import Decision, PolicyConfig, PolicyState, decide
from controlplane.autoscale.record import record_key, write_decision

POLICY_PATH = "controlplane.autoscale.serve_policy:EngineSignalPolicy"
POLL_S = 1.0
REDIS_BACKOFF_S = 5.0  # after a Redis error, hold the count and try again this much later
STATE_KEY = "glmctl"


def serve_autoscaling_config(
    policy: dict[str, Any],
    redis_url: str,
    namespace: str,
    deployment: str,
    app: str,
    role: str = "",
) -> dict[str, Any]:
    """Serve's `autoscaling_config` running this policy with `policy` (a PolicyConfig as
    a dict, with min_replicas / max_replicas / initial_replicas) (pure). `role` is the
    group's PD pool (`EngineGroupPlan.pd`): its policy reads and scales that pool only;
    "" (colocated) adds nothing, so colocated renders stay as they were."""
    if role:
        policy = {**policy, "role": role}
    return {
        "min_replicas": policy["min_replicas"],
        "max_replicas": policy["max_replicas"],
        "initial_replicas": policy["initial_replicas"],
        "upscale_delay_s": 0.0,
        "downscale_delay_s": 0.0,
        "policy": {
            "policy_function": POLICY_PATH,
            "policy_kwargs": {
                "redis_url": redis_url,
                "namespace": namespace,
                "deployment": deployment,
                "app": app,
                "config": policy,
            },
        },
    }


class EngineSignalPolicy:
    """Class-form Serve policy: created once per deployment, called every control tick."""

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        deployment: str,
        app: str,
        config: dict[str, Any],
        poll_s: float = POLL_S,
    ) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        self.deployment = deployment
        self.app = app
        self.config = PolicyConfig.from_dict(config)
        self.poll_s = poll_s
        self.reader: Any = None
        self.state: PolicyState | None = None
        self.next_read = 0.0
        self.desired: int | None = None

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        if self.state is None:  # a restarted controller resumes the windows and cooldowns
            self.state = PolicyState.from_dict(ctx.policy_state.get(STATE_KEY))
        now = time.time()
        current = int(ctx.target_num_replicas)
        if now >= self.next_read or self.desired is None:
            self.next_read = now + self.poll_s
            decision = self._tick(current, now)
            self.state = decision.state
            self.desired = decision.desired
        return self.desired, {**ctx.policy_state, STATE_KEY: self.state.to_dict()}

    def _tick(self, current: int, now: float) -> Decision:
        assert self.state is not None
        try:
            signals = self._reader().read()
        except Exception:  # Redis down or restarting: hold (never scale on no data)
            self.next_read = now + REDIS_BACKOFF_S
            return decide(None, current, self.state, self.config, now)
        decision = decide(signals, current, self.state, self.config, now)
        with contextlib.suppress(Exception):  # the record is for people; the decision stands
            write_decision(
                self.reader.client,
                self.namespace,
                record_key(self.deployment, self.config.role),
                decision,
                len(signals.replicas),
                self.config.max_replicas,
                signals.overflow_inflight,
            )
        return decision

    def _reader(self) -> Any:
        if self.reader is None:
            from controlplane.autoscale.signals import SignalReader
            from controlplane.settings import get_settings

            url = self.redis_url or get_settings().redis_url_with_password() or ""
            self.reader = SignalReader(url, self.namespace, self.app, self.config.role)
        return self.reader
