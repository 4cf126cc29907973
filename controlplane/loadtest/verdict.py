"""The SLO verdict of a load test (pure): each objective's target, measured value, pass/fail.

Targets come from `--slo ttft_p99=2s,itl_p99=50ms,availability=0.99` laid over the
topology's `slo:` block (or its defaults). A run with no completed request fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controlplane.errors import UserError
from controlplane.spec.messages import validation_messages
from controlplane.spec.models import SloSpec

_FIX = (
    "write --slo as comma-separated key=value pairs, e.g. ttft_p99=2s,itl_p99=50ms,"
    "availability=0.999 (keys: ttft_p99, itl_p99, availability)."
)


def parse_slo(text: str | None, base: SloSpec | None = None) -> SloSpec:
    """`base` (default: SloSpec()) with the pairs of `text` laid over it."""
    values: dict[str, Any] = (base or SloSpec()).model_dump()
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in SloSpec.model_fields:
            raise UserError(f"--slo: `{part.strip()}` is not an objective.", fix=_FIX)
        values[key] = value.strip()
    try:
        return SloSpec.model_validate(values)
    except ValidationError as exc:
        problems = " ".join(validation_messages(exc, SloSpec))
        raise UserError(f"--slo `{text}`: {problems}", fix=_FIX) from None


@dataclass(frozen=True)
class VerdictRow:
    objective: str
    target: float
    measured: float
    passed: bool
    unit: str  # "s" or "" (a share)


@dataclass(frozen=True)
class Verdict:
    rows: tuple[VerdictRow, ...]
    goodput_share: float
    goodput_token_throughput: float

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "goodput_share": self.goodput_share,
            "goodput_token_throughput": self.goodput_token_throughput,
            "objectives": [row.__dict__ for row in self.rows],
        }


def judge(summary: dict[str, Any], slo: SloSpec) -> Verdict:
    """Compare a `stats.summarise` summary with the objectives."""
    ttft = summary["ttft_s"]["p99"]
    itl = summary["itl_s"]["p99"]
    rows = (
        VerdictRow("ttft_p99", slo.ttft_p99, ttft, _within(ttft, slo.ttft_p99), "s"),
        VerdictRow("itl_p99", slo.itl_p99, itl, _within(itl, slo.itl_p99), "s"),
        VerdictRow(
            "availability",
            slo.availability,
            summary["availability"],
            summary["completed"] > 0 and summary["availability"] >= slo.availability,
            "",
        ),
    )
    return Verdict(rows, summary["goodput_share"], summary["goodput_token_throughput"])


def _within(measured: float, target: float) -> bool:
    return not math.isnan(measured) and measured <= target


def format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.2%}"
