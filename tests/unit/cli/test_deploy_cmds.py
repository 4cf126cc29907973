"""`glmctl render` and `glmctl plan` input errors: a message with a fix, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.helpers import invoke

TOPOLOGY = Path(__file__).resolve().parents[3] / "topologies" / "glm45-fp8.yaml"


def test_render_writes_the_serve_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke(["render", str(TOPOLOGY), "--out", str(tmp_path)], capsys, monkeypatch)
    assert result.code == 0, result.text
    assert (tmp_path / "glm45-fp8.yaml").read_text().strip()


def test_render_into_a_file_instead_of_a_folder_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    result = invoke(["render", str(TOPOLOGY), "--out", str(not_a_folder)], capsys, monkeypatch)
    assert result.code == 2, result.text
    assert "cannot write" in result.text and "To fix" in result.text
    assert "Traceback" not in result.text and "internal error" not in result.text


@pytest.mark.parametrize("argv", [["render", "--target", "k8s"], ["plan"]])
def test_missing_topology_file_is_a_user_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke([argv[0], "nonexistent.yaml", *argv[1:]], capsys, monkeypatch)
    assert result.code == 2, result.text
    assert "To fix" in result.text and "Traceback" not in result.text


def test_status_tables_show_nodes_and_replica_ranks() -> None:
    from rich.console import Console

    from controlplane.cli.deploy_cmds import _deployments_table, _nodes_table

    node = {"node_id": "a" * 20, "gpu_type": "H200", "gpus_free": 4, "gpus_total": 8}
    node |= {"cpus_free": 2.0, "memory_bytes": 8 * 1024**3}
    rank = {"rank": 0, "node_id": "a" * 20, "gpu_ids": ["0", "1"]}
    deployment = {"name": "glm45-fp8", "status": "RUNNING", "engine": "sglang", "runtime": "sim"}
    deployment |= {"model": "glm-4.5-fp8", "endpoint": "http://127.0.0.1:1"}
    deployment |= {"replicas": {"serving": 1, "desired": 2, "min": 2, "max": 2}}
    deployment |= {"replica_details": [{"ranks": [rank]}]}
    console = Console(width=200, record=True)
    console.print(_nodes_table([node]), _deployments_table([deployment]))
    text = console.export_text()
    assert "aaaaaaaaaaaa" in text and "4/8" in text
    assert "sglang (sim)" in text and "1/2" in text and "r0@aaaaaaaa gpus 0,1" in text


def test_status_json_replicas_say_what_they_count() -> None:
    """The issue's case: applied with 2, the autoscaler grew it to 4 serving replicas; the
    JSON's `replicas` must not say 2 (what a script reads first)."""
    from controlplane.backends.ray.manage import replica_counts

    reading = {"desired": 4, "running": 4, "max": 6, "direction": "up", "reason": "kv_usage"}
    grown = replica_counts(applied=2, serving=4, reading=reading, bounds=(1, 6))
    assert grown == {"serving": 4, "desired": 4, "min": 1, "max": 6}
    fixed = replica_counts(applied=3, serving=2, reading=None, bounds=None)
    assert fixed == {"serving": 2, "desired": 3, "min": 3, "max": 3}


def test_status_autoscale_line_shows_overflow_demand_only_when_any() -> None:
    from controlplane.cli.deploy_cmds import _autoscale_line

    reading = {"desired": 4, "running": 2, "max": 4, "direction": "up"}
    reading |= {"reason": "overflow_demand", "overflow_inflight": 13}
    line = _autoscale_line("glm45", reading)
    assert "wants 4, 2 serving, 13 on overflow counted as demand" in line
    assert line.endswith("last: up (overflow_demand)")
    older = {k: v for k, v in reading.items() if k != "overflow_inflight"}  # older record
    assert "overflow" not in _autoscale_line("glm45", older | {"reason": "kv_usage"})


def test_apply_refuses_a_serving_gap_unless_downtime_is_allowed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from types import SimpleNamespace

    from controlplane.autoscale.rollout import UpdateGap
    from controlplane.cli.deploy_cmds import _check_gap
    from controlplane.errors import UserError

    prepared = SimpleNamespace(gap=UpdateGap(drain_s=40.0, startup_s=120.0))
    with pytest.raises(UserError) as refused:
        _check_gap(prepared, "solo", allow_downtime=False)
    assert "a gap of up to 160 s" in str(refused.value)
    assert "--allow-downtime" in str(refused.value)
    _check_gap(prepared, "solo", allow_downtime=True)  # goes ahead, saying so
    assert "a gap of up to 160 s" in capsys.readouterr().out
    _check_gap(SimpleNamespace(gap=None), "solo", allow_downtime=False)  # no gap: silent
