"""Autoscaling on engine signals: the pure policy, its Redis signals and the Ray Serve hook.

policy.py (pure decision) <- signals.py (reads the router's Redis snapshots) <-
serve_policy.py (Ray Serve custom autoscaling policy, runs in the Serve controller);
record.py writes each decision where `glmctl status` and the router's /metrics read it.
"""

from controlplane.autoscale.policy import (
    Decision,
    PolicyConfig,
    PolicyState,
    ReplicaSignal,
    Signals,
    decide,
)

__all__ = ["Decision", "PolicyConfig", "PolicyState", "ReplicaSignal", "Signals", "decide"]
