"""The keeper's repair decisions that need no Redis or Ray."""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.backends.ray.keeper_heal import DurableKeys, durable_keys, lost_nodes


def test_durable_keys_are_found_by_deployment_name() -> None:
    keys = durable_keys({"b", "a"})
    assert keys[:2] == ["glmctl:deployments", "glmctl:apikeys"]
    assert keys[2:7] == [
        "glmctl:deployment:a",
        "glmctl:router:a",
        "glmctl:failures:a",
        "glmctl:restarts-stopped:a",
        "glmctl-a:apikeys",  # the deployment's router namespace
    ]
    assert len(keys) == 12
    assert not any("sess" in key or "*" in key for key in keys)  # never a keyspace scan


@dataclass(eq=False)
class FakeNode:
    dead: list[str] = field(default_factory=list)

    def dead_processes(self) -> list[str]:
        return self.dead


def test_a_node_with_an_exited_process_is_lost() -> None:
    healthy, lost = FakeNode(), FakeNode(["raylet"])
    assert lost_nodes({healthy: 1, lost: 2}) == [lost]


def test_snapshots_are_due_every_second() -> None:
    durable = DurableKeys()
    assert durable.due(100.0)
    durable.taken_at = 100.0
    assert not durable.due(100.5) and durable.due(101.0)
