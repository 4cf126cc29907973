"""Calibration: glmctl's KV-pool model against public vLLM and SGLang start-up logs.

A case (tests/data/capacity/kv_cases.yaml) holds one published launch: its parameters, the
KV tokens, KV bytes and weights the engine reported, and the link. `predict` runs it through
the same model `glmctl capacity` uses (`replica_memory` under the engine's rule for the case's
version); `error_rows` compares. Pure: the caller reads the YAML.

    python -m ops.calibration.kv_table tests/data/capacity/kv_cases.yaml

prints the table the README's "Sizing" section shows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any

from controlplane.capacity.layout import Layout, parse_version
from controlplane.capacity.memory import replica_memory
from controlplane.catalog import GIB, MIB, GpuType, Precision, find_gpu, find_model
from controlplane.catalog.hf_config import architecture_from_config, weight_format
from controlplane.spec.models import EngineKind

TOKEN_TOLERANCE = 0.05  # issue 11: KV tokens within 5% of the engine's own count
WEIGHT_TOLERANCE = 0.02  # ... and weights within 2%


@dataclass(frozen=True)
class Prediction:
    kv_tokens: int  # per pool (one data-parallel rank), as the engine logs it
    kv_gib: float  # the pool of one GPU rank before page rounding
    weights_gib: float  # one GPU rank of the first stage


@dataclass(frozen=True)
class Row:
    """One case of the error table."""

    case_id: str
    engine: str
    version: str
    source: str
    reported_tokens: int | None
    predicted_tokens: int | None
    reported_weights: float | None
    predicted_weights: float | None
    excluded: str
    sets: tuple[str, ...]
    known_gap: str = ""
    tokens_derived: bool = False  # the log gives the pool in GiB: tokens scaled from it

    @property
    def token_error(self) -> float | None:
        if not self.reported_tokens or self.predicted_tokens is None:
            return None
        return self.predicted_tokens / self.reported_tokens - 1

    @property
    def weight_error(self) -> float | None:
        if not self.reported_weights or self.predicted_weights is None:
            return None
        return self.predicted_weights / self.reported_weights - 1

    @property
    def within(self) -> bool:
        """Tokens within 5% and weights within 2% (where the log reports them)."""
        tokens, weights = self.token_error, self.weight_error
        ok_tokens = tokens is None or abs(tokens) <= TOKEN_TOLERANCE
        ok_weights = weights is None or abs(weights) <= WEIGHT_TOLERANCE
        return ok_tokens and ok_weights


def _gpu(name: str, gpus: dict[str, Any]) -> GpuType:
    """A catalog GPU, or one the calibration file describes (nvidia-smi MiB, torch total)."""
    found = find_gpu(name)
    if found is not None:
        return found
    spec = gpus[name]
    return GpuType(
        name,
        name,
        int(spec["nvidia_smi_mib"] * MIB),
        1e12,
        1e14,
        None,
        600e9 if spec.get("nvlink", False) else 32e9,
        torch_total_gib=float(spec["torch_total_gib"]),
    )


def _model(key: str, models: dict[str, Any]) -> tuple[Any, Precision]:
    cfg = models[key]
    if "catalog" in cfg:
        entry = find_model(cfg["catalog"])
        assert entry is not None, cfg["catalog"]
        return entry.arch, entry.weight_format
    fmt, scheme = weight_format(cfg, origin=key)
    return replace(architecture_from_config(cfg, origin=key), quant=scheme), fmt


def case_layout(case: dict[str, Any], data: dict[str, Any]) -> Layout:
    """The `Layout` of a calibration case: its model, GPU, split, engine and version."""
    arch, fmt = _model(case["model"], data["models"])
    engine = EngineKind(case["engine"])
    kv = Precision(case.get("kv_dtype", "fp16" if fmt is Precision.FP16 else "bf16"))
    tp, pp, dp = int(case.get("tp", 1)), int(case.get("pp", 1)), int(case.get("dp", 1))
    return Layout(
        arch=arch,
        precision=fmt,
        kv_dtype=kv,
        gpu=_gpu(case["gpu"], data.get("gpus", {})),
        tp=tp,
        context=int(case["max_model_len"]),
        max_num_seqs=int(case.get("max_num_seqs", 1)),
        pp=pp,
        dp=dp,
        dp_attention=bool(case.get("dp_attention", False)),
        engine=engine,
        mem_fraction=case.get("mem_fraction"),
        chunked_prefill=case.get("max_num_batched_tokens"),
        gpus_per_node=-(-(tp * pp * dp) // int(case.get("nodes", 1))),
        weight_format=fmt,
        engine_version=parse_version(str(case.get("version", ""))),
        page_size=case.get("block_size"),
    )


def predict(case: dict[str, Any], data: dict[str, Any]) -> Prediction:
    """glmctl's figures for one case (the smallest pipeline stage decides the tokens)."""
    memory = replica_memory(case_layout(case, data))
    first = memory.stages[0]
    return Prediction(memory.kv_tokens, first.kv_pool_bytes / GIB, first.weights.total / GIB)


def error_rows(data: dict[str, Any]) -> list[Row]:
    """Every case of `data` (the parsed YAML) with glmctl's prediction beside the log's."""
    rows = []
    for case in data["cases"]:
        reported = case.get("reported", {})
        excluded = str(case.get("excluded", "")).strip()
        guess = None if excluded else predict(case, data)
        tokens = reported.get("kv_tokens")
        derived = tokens is None and reported.get("kv_gib") is not None and guess is not None
        if derived and guess is not None:
            # The log gives the pool in GiB only: compare pools (tokens scale with it).
            tokens = round(guess.kv_tokens * reported["kv_gib"] / max(guess.kv_gib, 1e-9))
        rows.append(
            Row(
                case["id"],
                case["engine"],
                str(case.get("version", "")),
                case["source"],
                tokens,
                guess.kv_tokens if guess else None,
                reported.get("weights_gib"),
                guess.weights_gib if guess else None,
                excluded,
                tuple(case.get("sets") or ()),
                str(case.get("known_gap", "")).strip(),
                derived,
            )
        )
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def markdown_table(rows: list[Row]) -> str:
    """The README table: case, engine, reported vs predicted tokens and weights, errors."""
    lines = [
        "| case | engine | KV tokens (log) | glmctl | error | weights GiB (log) | glmctl"
        " | error | note |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        note = f"excluded: {r.excluded}" if r.excluded else ""
        if not r.excluded and r.sets:
            note = "sets " + ", ".join(r.sets)
        if not r.excluded and not r.within:
            gap = f"outside tolerance: {r.known_gap}" if r.known_gap else "outside tolerance"
            note = (note + "; " if note else "") + gap
        reported = f"{r.reported_tokens or '-'}" + (" (from GiB)" if r.tokens_derived else "")
        lines.append(
            f"| [{r.case_id}]({r.source}) | {r.engine} {r.version} | {reported}"
            f" | {r.predicted_tokens if r.predicted_tokens is not None else '-'}"
            f" | {_pct(r.token_error)} | {r.reported_weights or '-'}"
            f" | {'-' if r.predicted_weights is None else f'{r.predicted_weights:.2f}'}"
            f" | {_pct(r.weight_error)} | {note} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import yaml

    with open(argv[1], encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    print(markdown_table(error_rows(data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
