"""Bounded restarts: backoff while few failures, then a latched report with the first cause."""

from __future__ import annotations

import pytest

from controlplane.autoscale.drain import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    MAX_RESTARTS,
    RESTART_WINDOW_S,
)
from controlplane.autoscale.restarts import (
    Failure,
    StoppedRestarts,
    failure_entry,
    parse_failure,
    restart_verdict,
)

NOW = 10_000.0


def test_few_recent_failures_back_off() -> None:
    failures = [Failure(NOW - 30, "rank 0 exited with code 1"), Failure(NOW - 10, "oom")]
    delay = restart_verdict(failures, NOW)
    assert isinstance(delay, float) and 0 < delay <= BACKOFF_CAP_S


def test_the_limit_stops_restarts_with_the_first_cause_of_the_window() -> None:
    failures = [Failure(NOW - RESTART_WINDOW_S - 5, "long ago")]  # outside the window
    failures += [Failure(NOW - 100 + i, f"cause {i}") for i in range(MAX_RESTARTS)][::-1]
    verdict = restart_verdict(failures, NOW)
    assert isinstance(verdict, StoppedRestarts)
    assert (verdict.failures, verdict.first_cause, verdict.since) == (MAX_RESTARTS, "cause 0", NOW)
    message = verdict.message("glm45-fp8")
    assert f"failed {MAX_RESTARTS} times in 10 min" in message
    assert "First cause: cause 0." in message and "To fix:" in message
    assert StoppedRestarts.from_json(verdict.to_json()) == verdict


@pytest.mark.parametrize(("recent", "doublings"), [(0, None), (1, 0), (2, 1), (3, 2), (4, 3)])
def test_below_the_limit_the_wait_doubles_per_failure_in_the_window(
    recent: int, doublings: int | None
) -> None:
    """Exponential backoff (drain.py): base, 2 x base, 4 x base ...; none without failures.

    A failure older than the window is present every time and must not count."""
    assert recent < MAX_RESTARTS
    failures = [Failure(NOW - RESTART_WINDOW_S - 1, "long ago")]
    failures += [Failure(NOW - 5 * (i + 1), f"cause {i}") for i in range(recent)]
    expected = 0.0 if doublings is None else min(BACKOFF_BASE_S * 2**doublings, BACKOFF_CAP_S)
    assert restart_verdict(failures, NOW) == expected


def test_one_failure_fewer_still_restarts_and_the_next_one_stops() -> None:
    failures = [Failure(NOW - i, f"cause {i}") for i in range(MAX_RESTARTS)]
    below = restart_verdict(failures[:-1], NOW)
    assert below == min(BACKOFF_BASE_S * 2 ** (MAX_RESTARTS - 2), BACKOFF_CAP_S)
    at_limit = restart_verdict(failures, NOW)
    assert isinstance(at_limit, StoppedRestarts) and at_limit.failures == MAX_RESTARTS
    # the oldest failure in the window is the first cause (failures were listed newest last)
    assert at_limit.first_cause == f"cause {MAX_RESTARTS - 1}"


def test_failure_entries_round_trip_and_older_bare_times_parse() -> None:
    assert parse_failure(failure_entry(12.5, "rank 1 lost")) == Failure(12.5, "rank 1 lost")
    assert parse_failure(b"1700000000.25") == Failure(1700000000.25)
    assert parse_failure("not json") == Failure(0.0)
    assert len(parse_failure(failure_entry(1.0, "x" * 1000)).cause) == 300
