"""An external endpoint's key is a reference everywhere glmctl writes: `plan` (text, yaml,
json), `show`, the Ray Serve config and the Kubernetes manifests hold the variable's name or
the Secret's, never the value, even while the value is in glmctl's own environment."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from tests.unit.cli.helpers import invoke

REPO = Path(__file__).resolve().parents[3]
TOPOLOGY = REPO / "topologies" / "glm45-air-fp8-overflow.yaml"


def test_no_output_of_plan_show_or_render_holds_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = "sk-zhipu-" + secrets.token_hex(16)
    monkeypatch.setenv("ZHIPU_API_KEY", key)
    monkeypatch.setenv("GLMCTL_STATE_DIR", str(tmp_path / "state"))
    outputs = {}
    for argv in (
        ["plan", str(TOPOLOGY)],
        ["plan", str(TOPOLOGY), "-o", "yaml"],
        ["plan", str(TOPOLOGY), "-o", "json"],
        ["show", str(TOPOLOGY)],
        ["render", str(TOPOLOGY), "--target", "ray", "--out", str(tmp_path / "ray")],
        ["render", str(TOPOLOGY), "--target", "k8s", "--out", str(tmp_path / "k8s")],
    ):
        result = invoke(argv, capsys, monkeypatch)
        assert result.code == 0, result.text
        outputs[" ".join(argv[:3])] = result.text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    outputs |= {str(p): p.read_text() for p in files}
    assert len(files) >= 5
    assert "ZHIPU_API_KEY" in outputs[f"plan {TOPOLOGY}"]  # the reference is shown
    leaks = [where for where, text in outputs.items() if key in text]
    assert not leaks, f"the key appears in {leaks}"


def test_the_router_pod_reads_the_key_from_a_secret() -> None:
    router = REPO / "manifests" / "glm45-air-fp8-overflow" / "router.yaml"
    deployment = next(
        d for d in yaml.safe_load_all(router.read_text()) if d["kind"] == "Deployment"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["ZHIPU_API_KEY"] == {
        "name": "ZHIPU_API_KEY",
        "valueFrom": {
            "secretKeyRef": {"name": "glm45-air-fp8-overflow-external", "key": "ZHIPU_API_KEY"}
        },
    }
    args = container["args"]
    assert args[args.index("--overflow-at") + 1] == "8"  # max_num_seqs of the topology
    assert '"role": "overflow"' in args[args.index("--external") + 1]
    assert "glm45-air-fp8-overflow-external (keys ZHIPU_API_KEY)" in router.read_text()
