"""A replica's start-up failure reaches the user as its exception lines, not its frames."""

from __future__ import annotations

import traceback

from controlplane.backends.ray.deploy import without_tracebacks


def _engine_failure() -> str:
    """A real chained traceback, as a replica constructor's failure formats it."""
    try:
        try:
            raise FileNotFoundError(2, "No such file or directory", "sglang")
        except FileNotFoundError as exc:
            raise RuntimeError("engine rank 0 exited with code 127 before it was healthy") from exc
    except RuntimeError as exc:
        return "".join(traceback.format_exception(exc))


def test_serves_status_message_keeps_the_exception_lines_only() -> None:
    # The wording of Ray Serve 2.60 (deployment_state.py, REPLICA_STARTUP_FAILED).
    message = (
        "The deployment failed to start 2 times in a row. This may be due to a problem with its"
        " constructor or initial health check failing. See controller logs for details. Error:\n"
        "ray.exceptions.RayTaskError(RuntimeError): ray::ServeReplica:glm45-fp8-1a2b:EngineGroup"
        ".initialize_and_get_metadata() (pid=4242, ip=127.0.0.1)\n" + _engine_failure()
    )
    text = without_tracebacks(message)
    assert "Traceback" not in text and "File " not in text and "ray::" not in text
    assert text.startswith("The deployment failed to start 2 times in a row.")
    cause = text.index("FileNotFoundError: [Errno 2] No such file or directory: 'sglang'")
    assert cause < text.index("RuntimeError: engine rank 0 exited with code 127")


def test_a_message_without_a_traceback_is_unchanged() -> None:
    assert without_tracebacks("Deploying: 0/1 replicas healthy.") == (
        "Deploying: 0/1 replicas healthy."
    )
