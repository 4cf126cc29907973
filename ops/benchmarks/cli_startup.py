"""Benchmark: how long `glmctl` takes to start, against `python -c pass` in the same run.

Run: `python -m ops.benchmarks.cli_startup`. Each command runs REPEATS times in a fresh
process (the installed `glmctl` script beside this Python); the median wall time is
printed with its ratio to a bare interpreter. Target: `glmctl --version` and
`glmctl capacity FILE` under 0.3 s. The gap to `python -c pass` is what glmctl imports.

Python reads compiled bytecode (`__pycache__/*.pyc`) when it exists; an install that wrote
none (uv without `--compile-bytecode` and PYTHONDONTWRITEBYTECODE set) compiles every
module it imports on every start, about 1.5 s more here. The benchmark says which case
it measured.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEATS = 7
TARGET_S = 0.3
TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "glm45-fp8.yaml"
GLMCTL = str(Path(sys.executable).with_name("glmctl"))
COMMANDS: tuple[tuple[str, list[str], bool], ...] = (
    ("python -c pass", [sys.executable, "-c", "pass"], False),
    ("glmctl --version", [GLMCTL, "--version"], True),
    ("glmctl capacity --help", [GLMCTL, "capacity", "--help"], False),
    ("glmctl capacity FILE", [GLMCTL, "capacity", str(TOPOLOGY)], True),
    ("glmctl --help (all commands)", [GLMCTL, "--help"], False),
)


def wall_time(argv: list[str]) -> float:
    """Median wall seconds of REPEATS fresh runs of `argv` (output discarded)."""
    samples = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def bytecode_cached() -> bool:
    """True when the installed typer has compiled bytecode beside its sources."""
    import typer

    return any(Path(typer.__file__).parent.glob("__pycache__/*.pyc"))


def main() -> int:
    print(f"compiled bytecode present: {bytecode_cached()}; median of {REPEATS} runs each")
    baseline = wall_time(COMMANDS[0][1])
    missed = []
    for label, argv, targeted in COMMANDS:
        seconds = baseline if argv is COMMANDS[0][1] else wall_time(argv)
        verdict = ""
        if targeted:
            verdict = "  ok" if seconds < TARGET_S else f"  OVER the {TARGET_S} s target"
            if seconds >= TARGET_S:
                missed.append(label)
        print(
            f"{label:32s} {seconds * 1000:7.0f} ms  {seconds / baseline:5.1f} x python"
            f"  (+{(seconds - baseline) * 1000:.0f} ms){verdict}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
