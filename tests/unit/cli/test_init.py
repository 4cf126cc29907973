"""`glmctl init` as a person uses it: answers typed on stdin, or flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controlplane.spec import load_topology

SCRIPT = str(Path(sys.executable).with_name("glmctl"))


def _init(cwd: Path, *argv: str, answers: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, "init", *argv], cwd=cwd, input=answers, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_interactive_answers_on_stdin_write_the_topology(tmp_path: Path) -> None:
    typed = "glm-4.5-air\nfp8\nH200\n1\n32768\n8\nsglang\n"
    result = _init(tmp_path, answers=typed)
    assert result.returncode == 0, result.stderr
    for question in ("Model", "Precision", "GPU type", "GPUs available", "Context length"):
        assert question in result.stdout
    topo = load_topology(tmp_path / "glm45-air-fp8-h200x1.yaml")
    assert (topo.model.name, topo.gpu.name, topo.gpus_per_replica) == ("glm-4.5-air-fp8", "H200", 1)


def test_flags_ask_nothing_and_an_existing_file_is_kept(tmp_path: Path) -> None:
    flags = ("--model", "glm-4.5", "--precision", "fp8", "--gpu", "H100", "--gpus", "8",
             "--context", "32768", "--batch", "8", "--engine", "sglang",
             "--out", "mine.yaml")  # fmt: skip
    result = _init(tmp_path, *flags)
    assert result.returncode == 0, result.stderr
    assert "?" not in result.stdout.split("wrote")[0].replace("# ", "")
    assert load_topology(tmp_path / "mine.yaml").tp == 8
    again = _init(tmp_path, *flags)
    assert again.returncode == 2 and "mine.yaml exists. To fix: pass --force" in again.stderr


def test_a_bad_answer_is_one_paragraph(tmp_path: Path) -> None:
    result = _init(tmp_path, answers="glm-9\nauto\nH200\n8\n32768\n8\nsglang\n")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "glm-9" in result.stderr


def test_no_terminal_takes_the_workload_defaults_and_says_so(tmp_path: Path) -> None:
    """The issue's script case: hardware given, nothing on stdin (closed), no terminal."""
    flags = ("--model", "glm-4.5", "--precision", "fp8", "--gpu", "h100", "--gpus", "8")
    result = _init(tmp_path, *flags, answers="")
    assert result.returncode == 0, result.stderr
    assert "no terminal: took the defaults --context 32768 --batch 8 --engine sglang" in (
        " ".join(result.stderr.split())
    )
    assert "Context length" not in result.stdout  # nothing was asked
    (written,) = tmp_path.glob("*.yaml")
    topo = load_topology(written)
    assert (topo.context_length, topo.spec.max_num_seqs) == (32768, 8)


def test_no_terminal_names_the_missing_hardware_flags_and_exits_2(tmp_path: Path) -> None:
    result = _init(tmp_path, "--model", "glm-4.5", "--precision", "fp8", answers="")
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "no terminal to ask on, and --gpu, --gpus not given" in message
    assert "--gpu VALUE --gpus VALUE" in message and "Traceback" not in message
    assert not list(tmp_path.glob("*.yaml"))
