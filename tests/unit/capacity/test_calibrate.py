"""`glmctl calibrate`: benchmark results read as the clients save them, the fit, the
`performance:` section and what it does to the model.

tests/data/calibrate/vllm-0.32.0-c1.json is a file `vllm bench serve` (vLLM 0.32.0, the
cached CPU venv) saved with `--save-result --save-detailed` against `glmctl sim serve`
(unchanged). No SGLang client runs here (its venv has no `transformers`); its JSON lines are
built with the keys `sglang/benchmark/serving.py` (SGLang 0.5.23, `benchmark` `result` and
`result_details`) writes. The fit is checked on runs the replay itself produced with known
scales, so the right answer is known exactly; tests/engines/test_calibrate_vllm_bench.py runs
the real client against the simulator.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controlplane.capacity.calibrate import (
    BenchRun,
    calibrate,
    read_runs,
    replay_run,
    scaled,
)
from controlplane.capacity.performance import performance_model
from controlplane.errors import UserError
from controlplane.spec import load_topology
from controlplane.spec.resolve import resolve

ROOT = Path(__file__).resolve().parents[3]
VLLM_RESULT = ROOT / "tests" / "data" / "calibrate" / "vllm-0.32.0-c1.json"
TOPOLOGY = ROOT / "topologies" / "glm45-air-fp8-h100x2.yaml"


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return performance_model(load_topology(TOPOLOGY))


def _sglang_line(**overrides: Any) -> dict[str, Any]:
    """One line of `sglang.bench_serving --output-file F --output-details` (0.5.23 keys)."""
    line = {
        "tag": None, "backend": "sglang-oai-chat", "dataset_name": "random",
        "request_rate": math.inf, "max_concurrency": 4, "sharegpt_output_len": None,
        "random_input_len": 1000, "random_output_len": 200, "random_range_ratio": 0.0,
        "server_info": None, "duration": 12.0, "completed": 3, "total_input_tokens": 1500,
        "total_output_tokens": 300, "request_throughput": 0.25, "output_throughput": 25.0,
        "mean_ttft_ms": 120.0, "median_ttft_ms": 118.0, "mean_tpot_ms": 21.0,
        "median_tpot_ms": 20.0, "mean_itl_ms": 20.5, "median_itl_ms": 20.1,
        "concurrency": 2.9, "accept_length": 2.6, "max_output_tokens_per_s": 60.0,
        "max_concurrent_requests": 3,
        "input_lens": [400, 500, 600], "output_lens": [100, 0, 200],
        "ttfts": [0.1, 0.0, 0.14], "itls": [[], [], []], "generated_texts": ["", "", ""],
        "errors": ["", "connection reset", ""],
    }  # fmt: skip
    line.update(overrides)
    return line


def test_a_real_vllm_result_reads_as_its_run() -> None:
    (run,) = read_runs([VLLM_RESULT]).runs
    data = json.loads(VLLM_RESULT.read_text())
    assert data["request_rate"] == "inf"  # how vLLM saves an unbounded rate
    assert run.client == "vllm bench serve" and run.concurrency == data["max_concurrency"] == 1
    assert run.exact_lengths
    assert run.lengths == tuple(zip(data["input_lens"], data["output_lens"], strict=True))
    assert (run.tpot_ms, run.ttft_ms) == (data["median_tpot_ms"], data["mean_ttft_ms"])
    assert run.output_tps == data["output_throughput"] and run.itl_ms == data["median_itl_ms"]


def test_sglang_json_lines_are_one_run_each_without_failed_requests(tmp_path: Path) -> None:
    path = tmp_path / "sglang.jsonl"
    lines = [_sglang_line(), _sglang_line(max_concurrency=8, median_tpot_ms=31.0)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))  # inf -> Infinity
    first, second = read_runs([path]).runs
    assert first.client == "sglang.bench_serving" and first.acceptance_length == 2.6
    assert first.lengths == ((400, 100), (600, 200)) and first.label == f"{path}:1"
    assert (second.concurrency, second.tpot_ms) == (8, 31.0)


def test_without_details_a_run_replays_at_its_mean_lengths(tmp_path: Path) -> None:
    line = _sglang_line()
    for key in ("input_lens", "output_lens", "errors"):
        del line[key]
    path = tmp_path / "plain.jsonl"
    path.write_text(json.dumps(line) + "\n")
    (run,) = read_runs([path]).runs
    assert not run.exact_lengths and run.lengths == ((500, 100),) * 3


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"request_rate": 10.0}, "--request-rate inf"),
        ({"max_concurrency": None}, "--max-concurrency C"),
        ({"max_concurrency": "8"}, "not a client count"),
        ({"median_tpot_ms": 0.0}, "median_tpot_ms"),
        ({"median_tpot_ms": math.inf}, "median_tpot_ms"),
        ({"mean_ttft_ms": "fast"}, "mean_ttft_ms"),
        ({"accept_length": "abc"}, "accept_length"),
        ({"failed": "x"}, "failed"),
        ({"input_lens": ["a", 500, 600]}, "not token counts"),
        ({"input_lens": [0, 500, 600]}, "not token counts"),
        ({"output_lens": [1, 0, 1]}, "no TPOT to fit"),
    ],
)
def test_runs_that_cannot_be_replayed_say_what_to_do(
    tmp_path: Path, change: dict[str, Any], says: str
) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_sglang_line(**change)))
    with pytest.raises(UserError) as caught:
        read_runs([path])
    assert says in str(caught.value) + (caught.value.fix or "")


def test_lengths_the_client_did_not_save_in_full_fall_back_to_means(tmp_path: Path) -> None:
    """An `errors` list of another length cannot say which requests failed."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_sglang_line(errors=[""], completed=2)))
    (run,) = read_runs([path]).runs
    assert not run.exact_lengths and len(run.lengths) == 2
    path.write_text(json.dumps(_sglang_line(completed=0.5, errors=None, input_lens=None)))
    with pytest.raises(UserError, match="not a request count"):
        read_runs([path])


def test_open_loop_lines_are_skipped_with_their_reason(tmp_path: Path) -> None:
    """SGLang appends every run to one file: the closed loops in it are used."""
    path = tmp_path / "sweep.jsonl"
    lines = [_sglang_line(request_rate=4.0), _sglang_line()]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    read = read_runs([path])
    assert [run.label for run in read.runs] == [f"{path}:2"]
    (skipped,) = read.skipped
    assert skipped.startswith(f"{path}:1 is an open-loop run") and "--request-rate inf" in skipped
    path.write_text(json.dumps(lines[0]) + "\n")
    with pytest.raises(UserError, match="no closed-loop benchmark run"):
        read_runs([path])


def test_files_that_are_not_results_say_which_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_sglang_line()) + "\n{not json\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2 is not JSON"):
        read_runs([bad])
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(UserError, match="not a benchmark result"):
        read_runs([other])
    with pytest.raises(UserError, match="cannot read"):
        read_runs([tmp_path / "missing.json"])
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not UTF-8"):
        read_runs([binary])


def _measured(  # type: ignore[no-untyped-def]
    model, decode: float, prefill: float, clients: int, n: int, cap: int | None = None
) -> BenchRun:
    """The run a replica `decode` / `prefill` times slower than the model would give, running
    at most `cap` requests at once."""
    lengths = tuple((300 + 97 * i % 700, 40 + 31 * i % 200) for i in range(n))
    probe = BenchRun("probe", "x", clients, lengths, True, 1.0, 1.0, 1.0)
    result = replay_run(scaled(model, decode, prefill), probe, cap)
    return BenchRun(f"c{clients}", "vllm bench serve", clients, lengths, True,
                    result.median_tpot_s * 1e3, result.mean_ttft_s * 1e3,
                    result.output_tokens_per_s)  # fmt: skip


def test_the_fit_finds_the_scales_the_runs_were_made_with(model) -> None:  # type: ignore[no-untyped-def]
    runs = [_measured(model, 1.3, 1.8, 1, 6), _measured(model, 1.3, 1.8, 16, 64)]
    found = calibrate(model, runs)
    assert found.decode_scale == pytest.approx(1.3, rel=0.01)
    assert found.prefill_scale == pytest.approx(1.8, rel=0.02)
    for fit in found.runs:
        assert fit.after.median_tpot_s * 1e3 == pytest.approx(fit.run.tpot_ms, rel=0.01)
        assert fit.before.median_tpot_s < fit.after.median_tpot_s
    assert found.notes == ()


def test_clients_beyond_the_engines_cap_wait_in_its_queue(model) -> None:  # type: ignore[no-untyped-def]
    """32 clients on an engine that runs 8: without the cap the fit ran off to its bounds."""
    run = _measured(model, 1.0, 1.0, 32, 96, cap=8)
    found = calibrate(model, [run], max_running=8)
    assert found.decode_scale == pytest.approx(1.0, rel=0.01)
    assert found.prefill_scale == pytest.approx(1.0, rel=0.02)
    assert found.notes == ()
    wrong = calibrate(model, [run], max_running=None)
    assert "did not settle" in " ".join(wrong.notes) or wrong.decode_scale < 0.9


def test_a_correction_already_in_the_topology_is_not_fitted_on_top(model) -> None:  # type: ignore[no-untyped-def]
    runs = [_measured(model, 0.8, 1.2, 4, 24)]
    corrected = scaled(model, 1.7, 3.0)  # what a topology with a performance: section gives
    found = calibrate(corrected, runs)
    assert found.decode_scale == pytest.approx(0.8, rel=0.01)


def test_notes_name_bounds_and_acceptance(model) -> None:  # type: ignore[no-untyped-def]
    run = _measured(model, 1.0, 1.0, 2, 8)
    slow = BenchRun("slow", "x", 2, run.lengths, False, run.tpot_ms * 400, run.ttft_ms, 1.0,
                    acceptance_length=4.0)  # fmt: skip
    found = calibrate(model, [slow])
    assert found.decode_scale == 20.0
    notes = " ".join(found.notes)
    assert "decode_scale reached its bound" in notes and "mean lengths" in notes
    assert "speculative.acceptance_length: 4.00" in notes


def test_the_performance_section_scales_the_model_and_only_when_given() -> None:
    topo = load_topology(TOPOLOGY)
    assert "performance" not in topo.spec.model_dump(mode="json")  # digests stay as they were
    data = topo.spec.model_dump(mode="json", by_alias=True)
    data["performance"] = {"decode_scale": 1.5, "prefill_scale": 2.0, "source": "test"}
    measured = resolve(type(topo.spec).model_validate(data))
    plain, fast = performance_model(topo), performance_model(measured)
    assert measured.spec.model_dump(mode="json")["performance"]["decode_scale"] == 1.5
    assert fast.decode_step_seconds(8, 8000) == pytest.approx(
        1.5 * plain.decode_step_seconds(8, 8000)
    )
    assert fast.prefill_seconds(900) == pytest.approx(2.0 * plain.prefill_seconds(900))
    assert any("decode step x1.5" in line for line in fast.assumptions)


def test_the_command_prints_the_section_to_paste(tmp_path: Path, model) -> None:  # type: ignore[no-untyped-def]
    run = _measured(model, 1.25, 1.5, 4, 24)
    path = tmp_path / "run.json"
    path.write_text(json.dumps({
        "max_concurrency": 4, "request_rate": "inf", "completed": len(run.lengths),
        "median_tpot_ms": run.tpot_ms, "mean_ttft_ms": run.ttft_ms,
        "output_throughput": run.output_tps, "median_itl_ms": run.tpot_ms,
        "input_lens": [i for i, _ in run.lengths], "output_lens": [o for _, o in run.lengths],
    }))  # fmt: skip
    text = _glmctl("calibrate", str(TOPOLOGY), str(path))
    assert text.returncode == 0, text.stderr
    assert "performance:\n  decode_scale: 1.25" in text.stdout
    data = json.loads(_glmctl("calibrate", str(TOPOLOGY), str(path), "-o", "json").stdout)
    assert data["performance"]["prefill_scale"] == pytest.approx(1.5, rel=0.02)
    corrected = data["runs"][0]["corrected"]["median_tpot_ms"]
    assert corrected == pytest.approx(run.tpot_ms, rel=0.01)
    bad = _glmctl("calibrate", str(TOPOLOGY), str(tmp_path / "none.json"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "cannot read" in bad.stderr
    pd = _glmctl("calibrate", str(ROOT / "topologies" / "glm45-air-fp8-pd.yaml"), str(path))
    assert pd.returncode == 2 and "prefill/decode topology" in pd.stderr, pd.stderr


def _glmctl(*argv: str) -> subprocess.CompletedProcess[str]:
    script = str(Path(sys.executable).with_name("glmctl"))
    return subprocess.run([script, *argv], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def test_a_correction_changes_estimates_not_what_runs() -> None:
    """Pasting the section must not roll the deployment: the plan's digest (the Serve
    version) leaves it out; only plan fields it changes (none here: the drain is capped)."""
    from controlplane.render.ray_serve import reference_plan

    topo = load_topology(ROOT / "topologies" / "glm45-fp8.yaml")
    data = topo.spec.model_dump(mode="json", by_alias=True)
    data["performance"] = {"decode_scale": 1.2, "prefill_scale": 1.5}
    measured = resolve(type(topo.spec).model_validate(data))
    plain, corrected = reference_plan(topo), reference_plan(measured)
    assert corrected.spec["performance"]["decode_scale"] == 1.2
    assert corrected.group.graceful_shutdown_s == plain.group.graceful_shutdown_s
    assert corrected.digest() == plain.digest()
    # Simulated replicas (no GPU on the embedded cluster) time their steps by the section:
    # they must restart to run at the new speed.
    from controlplane.planner import embedded_inventory, plan

    sim_plain = plan(topo, embedded_inventory(topo))
    sim_corrected = plan(measured, embedded_inventory(measured))
    assert sim_plain.group.simulated and sim_corrected.digest() != sim_plain.digest()
