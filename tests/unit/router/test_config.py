"""Router settings come from a topology's `router:` section and survive the CLI round trip."""

from __future__ import annotations

from controlplane.router.__main__ import parse_args
from controlplane.router.config import RouterConfig
from controlplane.spec.router import RouterPolicy, RouterSpec


def test_from_spec_and_cli_round_trip() -> None:
    spec = RouterSpec(policy=RouterPolicy.SESSION, replicas=3, port=8123, session_header="X-S")
    config = RouterConfig.from_spec("redis://127.0.0.1:1/0", spec, namespace="dep1")
    parsed, worker = parse_args(config.cli_args())
    assert parsed == config and not worker
    assert (parsed.policy, parsed.workers, parsed.session_header) == ("session", 3, "x-s")
