"""vLLM's profile-run activation peak is version-aware, and every range names its evidence.

The sampler term's copies per row are read from public start-up logs
(tests/data/capacity/kv_cases.yaml marks which log set which constant); a range without a log
must say so. The byte figures below are computed from the vocabulary and max_num_seqs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.capacity import vllm_rules
from controlplane.capacity.vllm_rules import SAMPLER_RULES, sampler_activation_bytes, sampler_rule
from controlplane.catalog import GIB, find_model

CASES = Path(__file__).resolve().parents[3] / "tests" / "data" / "capacity" / "kv_cases.yaml"


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


@pytest.mark.parametrize(
    ("version", "since"),
    [
        ((0, 9), (0, 0)),
        ((0, 10), (0, 0)),
        ((0, 11), (0, 11)),
        ((0, 12), (0, 12)),
        ((0, 24), (0, 12)),
        ((0, 32), (0, 12)),
    ],
)
def test_each_version_picks_the_range_it_falls_in(
    version: tuple[int, int], since: tuple[int, int]
) -> None:
    assert sampler_rule(version).since == since


def test_rules_are_ordered_and_cover_every_version_from_zero() -> None:
    starts = [rule.since for rule in SAMPLER_RULES]
    assert starts == sorted(starts) and starts[0] == (0, 0)
    assert all(rule.evidence for rule in SAMPLER_RULES)


def test_a_measured_range_has_a_calibration_log_that_sets_its_constant() -> None:
    cases = yaml.safe_load(CASES.read_text(encoding="utf-8"))["cases"]
    for index, rule in enumerate(SAMPLER_RULES):
        end = SAMPLER_RULES[index + 1].since if index + 1 < len(SAMPLER_RULES) else (99, 0)
        setters = [
            case["id"]
            for case in cases
            if case["engine"] == "vllm"
            and rule.since <= _version(str(case["version"])) < end
            and rule.constant in (case.get("sets") or ())
        ]
        if rule.measured:
            assert setters, f"{rule.since}: measured, but no log in kv_cases.yaml sets it"
        else:
            assert not setters and "carried forward" in rule.evidence, rule.since


def test_the_sampler_peak_follows_the_version() -> None:
    """1024 sequences of a 151,552-token vocabulary (GLM-4.5): one float32 row per sequence
    before 0.11, 9.7 per row from 0.11 (the V1 sampler's top-k / top-p buffers)."""
    entry = find_model("glm-4.5")
    assert entry is not None
    rows = 1024 * entry.arch.vocab_size * 4
    old = sampler_activation_bytes(entry.arch, 1024, (0, 10))
    new = sampler_activation_bytes(entry.arch, 1024, vllm_rules.TARGET_VERSION)
    assert old == pytest.approx(rows * 1.0)
    assert new == pytest.approx(rows * 9.7)
    assert 5.0 < new / GIB < 6.0  # the size the 0.11 logs show for a ~150k vocabulary
