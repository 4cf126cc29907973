"""`glmctl apply` of a prefill/decode (PD) topology with `engine: sim` on the embedded
default cluster: both pools come up as Serve deployments of one app, their replicas are
registered in Redis with their PD role and KV bootstrap port, `status` shows both pools,
`delete` removes both; the openai client's chat answers through the router's PD route.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]
REPO = Path(__file__).resolve().parents[3]
GLMCTL = str(Path(sys.executable).with_name("glmctl"))
NAME = "pd-apply"
MODEL = "glm-4.5-air-fp8"
ROUTER_PORT = 18637  # this test's own (apply falls back to a free one when taken)

Glmctl = Callable[..., str]


def topology() -> str:
    """The shipped single-node Air PD layout, simulated (a small override of the file)."""
    base = (REPO / "topologies" / "glm45-air-fp8-pd.yaml").read_text()
    return (
        f"name: {NAME}\n{base}engine: sim\nsimulation: {{time_scale: 4}}\n"
        f"router:\n  port: {ROUTER_PORT}\n"
    )


@pytest.fixture
def applied(tmp_path: Path) -> Iterator[tuple[Glmctl, Path]]:
    """The PD topology applied on a private embedded cluster; deleted afterwards."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GLMCTL_", "RAY_ADDRESS"))}
    state = tmp_path / "state"
    env = {**base, "GLMCTL_STATE_DIR": str(state), "COLUMNS": "250"}  # status tables unwrapped
    spec = tmp_path / f"{NAME}.yaml"
    spec.write_text(topology())

    def glmctl(*args: str, check: bool = True) -> str:
        done = subprocess.run([GLMCTL, *args], capture_output=True, text=True, timeout=300,
                              env=env, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0 or not check, done.stdout + done.stderr
        return done.stdout + done.stderr

    try:
        glmctl("apply", str(spec), "-y")
        yield glmctl, state
    finally:
        glmctl("delete", NAME, check=False)


def _status(glmctl: Glmctl) -> dict[str, object]:
    data = json.loads(glmctl("status", "-o", "json"))
    (found,) = [d for d in data["deployments"] if d["name"] == NAME]
    return dict(found)


def _endpoints(state: Path) -> list[object]:
    from controlplane.backends.ray.cluster import embedded_state
    from controlplane.router.registry import list_endpoints
    from controlplane.store.redis import router_namespace

    keeper = embedded_state(state)
    assert keeper is not None, "the embedded cluster is not running"
    return list(list_endpoints(keeper.redis_url, router_namespace(NAME)))


def test_apply_runs_both_pools_registered_with_their_roles(
    applied: tuple[Glmctl, Path],
) -> None:
    glmctl, state = applied
    deployment = _status(glmctl)
    assert deployment["status"] == "RUNNING" and deployment["runtime"] == "sim"
    pools = {p["pool"]: p for p in deployment["pools"]}  # type: ignore[attr-defined]
    assert {k: (p["serving"], p["desired"]) for k, p in pools.items()} == {
        "prefill": (1, 1),
        "decode": (1, 1),
    }
    replicas = deployment["replica_details"]
    assert sorted(r["pd"] for r in replicas) == ["decode", "prefill"]  # type: ignore[attr-defined]
    assert all(r["replica_id"].startswith(r["pd"] + "-") for r in replicas)  # type: ignore[attr-defined]
    endpoints = {e.pd: e for e in _endpoints(state)}  # type: ignore[attr-defined]
    assert set(endpoints) == {"prefill", "decode"}
    prefill, decode = endpoints["prefill"], endpoints["decode"]
    assert {prefill.model, decode.model} == {MODEL}
    assert prefill.url != decode.url
    # The simulator serves the KV bootstrap on its HTTP port (the pdsim contract).
    assert prefill.bootstrap_port == urlparse(prefill.url).port
    assert decode.bootstrap_port == 0
    shown = glmctl("status")
    assert "prefill 1/1, decode 1/1" in shown
    glmctl("delete", NAME, "--keep-cluster")  # both pools leave the registry
    assert _endpoints(state) == []
    assert NAME not in glmctl("status")


def test_chat_through_the_router_of_the_applied_pd_topology(
    applied: tuple[Glmctl, Path],
) -> None:
    """The openai client, streaming and not, through the router's PD route."""
    from openai import OpenAI

    glmctl, _ = applied
    client = OpenAI(base_url=f"{_status(glmctl)['endpoint']}/v1", api_key="unused")
    messages = [{"role": "user", "content": "Say hello in five words."}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16)  # type: ignore[arg-type]
    assert reply.choices[0].message.content and reply.usage is not None
    assert reply.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=16, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
