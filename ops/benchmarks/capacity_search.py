"""Benchmark: the capacity search, and how fast `glmctl` starts, side by side.

Run: `python -m ops.benchmarks.capacity_search`. Prints, in one run:
- start-up: `python -c pass`, `glmctl --version` and the issue's interactive command
  `glmctl capacity --model glm-4.5 --precision fp8 --gpu h200 --context 131072 --batch 8
  --search` as whole processes (best of 3), against a 0.3 s target (issue 11; the CLI's
  import time is the issue-10 engineer's, the search's time is capacity's);
- the cold search of that command in a fresh process (import excluded: empty caches, as
  the first `--search` of a process), ranked with preflight findings, target 100 ms;
- the full search over every catalog model x precision x GPU type x 1..64 GPUs (cold:
  empty caches; warm: repeated), how many layouts were evaluated and how many fit.

Each (model, precision, GPU type) is searched at its own context (32K, or the model's
maximum if shorter), batch 8, MTP where the checkpoint ships it, FP8 KV with FP8 weights.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from controlplane.capacity.layout import Layout
from controlplane.capacity.memory import replica_memory
from controlplane.capacity.search import MAX_GPUS, apply_shape, count_feasible, shapes_for
from controlplane.catalog import GPUS, MODELS, Precision

CONTEXT = 32768
BATCH = 8
TARGET_MS = 100.0
STARTUP_TARGET_S = 0.3
ISSUE_COMMAND = (
    "capacity --model glm-4.5 --precision fp8 --gpu h200 --context 131072 --batch 8 --search"
)
GLMCTL = Path(sys.executable).with_name("glmctl")
COLD_SEARCH_SCRIPT = """
import time
from controlplane.capacity.layout import layout_of
from controlplane.capacity.search import MAX_GPUS, search
from controlplane.spec import parse_spec, resolve
topo = resolve(parse_spec(
    "model: glm-4.5\\nprecision: fp8\\ngpus: {type: H200, count: 1}\\n"
    "context_length: 131072\\nmax_num_seqs: 8\\n"
))
base = layout_of(topo)
start = time.perf_counter()
found = search(base, range(1, MAX_GPUS + 1))
print(time.perf_counter() - start, len(found), found[0].layout.gpus, ",".join(found[0].flags))
"""


def bases() -> Iterator[Layout]:
    """One base layout per catalog model x precision x GPU type."""
    for model in MODELS:
        for precision in model.precisions:
            kv = precision if precision in (Precision.FP8, Precision.FP16) else Precision.BF16
            for gpu in GPUS:
                yield Layout(
                    arch=model.arch,
                    precision=precision,
                    kv_dtype=kv,
                    gpu=gpu,
                    tp=1,
                    context=min(CONTEXT, model.arch.max_context),
                    max_num_seqs=BATCH,
                    spec_steps=3 if model.has_mtp else 0,
                    spec_draft_tokens=4 if model.has_mtp else 0,
                    weight_format=model.weight_format,
                    gpus_per_node=gpu.default_per_node,
                )


def full_search() -> tuple[int, int, int, float, float]:
    """(bases, layouts evaluated, layouts that fit, wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    evaluated = feasible = count = 0
    for base in bases():
        count += 1
        done, ok = count_feasible(base, range(1, MAX_GPUS + 1))
        evaluated += done
        feasible += ok
    return count, evaluated, feasible, time.perf_counter() - wall, time.process_time() - cpu


def full_model_seconds_per_layout(sample: int = 1500) -> float:
    """The per-rank memory model (`replica_memory`) on a sample of the same layouts: what
    each check would cost without the fast path (measured in the same run, CPU time)."""
    layouts = [
        apply_shape(base, shape)
        for base in bases()
        for gpus in range(1, MAX_GPUS + 1)
        for shape in shapes_for(base, gpus)
    ][::7][:sample]
    cpu = time.process_time()
    for layout in layouts:
        replica_memory(layout)
    return (time.process_time() - cpu) / len(layouts)


def process_seconds(argv: list[str], runs: int = 3) -> float:
    """Best wall time of `argv` as a whole process (start-up included)."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=False, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def cold_issue_search() -> tuple[float, int, int, tuple[str, ...]]:
    """(seconds, layouts, GPUs of the first, its flags) of the issue's search, fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", COLD_SEARCH_SCRIPT], check=True, capture_output=True, text=True
    ).stdout.split()
    flags = tuple(out[3].split(",")) if len(out) > 3 else ()
    return float(out[0]), int(out[1]), int(out[2]), flags


def print_startup() -> None:
    bare = process_seconds([sys.executable, "-c", "pass"])
    version = process_seconds([str(GLMCTL), "--version"])
    command = process_seconds([str(GLMCTL), *ISSUE_COMMAND.split()])
    print(f"start-up (best of 3): python -c pass {bare * 1e3:.0f} ms")
    for name, took in (("glmctl --version", version), (f"glmctl {ISSUE_COMMAND}", command)):
        verdict = (
            "meets" if took < STARTUP_TARGET_S else f"misses by {took - STARTUP_TARGET_S:.2f} s"
        )
        print(
            f"  {name}: {took * 1e3:.0f} ms ({took / bare:.0f}x python -c pass;"
            f" target {STARTUP_TARGET_S * 1e3:.0f} ms: {verdict})"
        )
    seconds, layouts, gpus, flags = cold_issue_search()
    verdict = "meets" if seconds * 1e3 < TARGET_MS else "misses"
    print(
        f"  cold search of that command (fresh process, import excluded): {seconds * 1e3:.1f} ms,"
        f" {layouts} feasible layouts, first: {gpus} GPUs {flags or '(no preflight flags)'};"
        f" target {TARGET_MS:.0f} ms: {verdict}"
    )


def main() -> None:
    print_startup()
    count, evaluated, feasible, cold, cold_cpu = full_search()
    warm_runs = [full_search() for _ in range(5)]
    warm = min(run[3] for run in warm_runs)
    warm_cpu = min(run[4] for run in warm_runs)
    full = full_model_seconds_per_layout() * evaluated
    print(
        f"capacity search: {count} model x precision x GPU bases, GPU counts 1..{MAX_GPUS},"
        " every tensor x pipeline x DP-attention split"
    )
    print(f"  layouts evaluated: {evaluated}, feasible: {feasible}")
    print(f"  cold (empty caches): {cold * 1e3:7.1f} ms wall, {cold_cpu * 1e3:7.1f} ms CPU")
    print(f"  warm (best of 5):    {warm * 1e3:7.1f} ms wall, {warm_cpu * 1e3:7.1f} ms CPU")
    print(f"  per-rank model on every layout (extrapolated): {full * 1e3:7.1f} ms CPU")
    print(
        f"  ratios: cold/target {cold_cpu * 1e3 / TARGET_MS:.2f}, warm/target"
        f" {warm_cpu * 1e3 / TARGET_MS:.2f}, per-rank model/fast cold {full / cold_cpu:.1f}x"
        f" (target {TARGET_MS:.0f} ms)"
    )


if __name__ == "__main__":
    main()
