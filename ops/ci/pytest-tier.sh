#!/usr/bin/env bash
# One pytest tier for `make test` / `make test-fast` / `make slow`:
#   ops/ci/pytest-tier.sh NAME COMMAND... (a pytest command line)
# Prints the tier's wall time ("tier NAME: N s, exit C") so a CI log gives the time per tier.
# pytest exits 5 when a selection collects no test. With NARROWED=1 (make sets it when
# PYTEST_ARGS narrows the run to a path or marker) an empty tier is a pass; in the full run
# (CI) it fails, because it means a tier's tests lost their marker or were not collected.
# With RERUN_FAILED=1 (the slow tier: multi-host clusters, chaos, Ray autoscaling, whose
# timing depends on what else the machine runs) the tests that failed run once more, alone,
# and the tier passes only if they all pass then. The log names every rerun test, so a
# flaky test stays visible; a test that fails twice fails the tier.
set -u
name=$1
shift
started=$(date +%s)
"$@"
code=$?
if [ "$code" -eq 1 ] && [ "${RERUN_FAILED:-}" = 1 ]; then
    echo "tier $name: rerunning the failed tests once (pytest --last-failed):"
    "$@" --last-failed --last-failed-no-failures none
    code=$?
    echo "tier $name: rerun exit $code"
fi
echo "tier $name: $(($(date +%s) - started)) s, exit $code"
if [ "$code" -eq 5 ] && [ "${NARROWED:-}" = 1 ]; then
    echo "tier $name: no test selected by PYTEST_ARGS; counted as a pass"
    code=0
fi
exit "$code"
