"""A failed replica start is reported as its first cause, without Ray's traceback."""

from __future__ import annotations

from controlplane.backends.ray.failures import first_cause

LOG = "/tmp/glmctl-logs/glm45-bf16-abc123-rank1.log"
# The shape of Serve's DEPLOY_FAILED message for a constructor that raised (Ray 2.60).
RAY_MESSAGE = (
    "The deployment failed to start 1 times in a row. This may be due to a problem with its"
    " constructor or initial health check failing. See controller logs for details. Error:\n"
    "ray::ServeReplica:glm45-bf16-f1de6e39e0:EngineGroup.initialize_and_get_metadata()"
    " (pid=4242, ip=10.77.0.2, actor_id=ab12, repr=<ray.serve._private.replica.ServeReplica"
    " object at 0x7f>)\n"
    '  File "/usr/lib/python3.11/concurrent/futures/_base.py", line 456, in result\n'
    "    return self.__get_result()\n"
    '  File "/work/controlplane/backends/ray/serve_app.py", line 99, in _wait_healthy\n'
    '    raise RuntimeError(f"engine exited before it was healthy: {reason}")\n'
    "RuntimeError: engine exited before it was healthy: rank 1 on 10.77.0.3 exit code 1;"
    f" log {LOG}:\n"
    "Traceback (most recent call last):\n"
    '  File "<frozen runpy>", line 189, in _run_module_as_main\n'
    '  File "<frozen runpy>", line 112, in _get_module_details\n'
    "ModuleNotFoundError: No module named 'sglang'"
)


def test_engine_exit_names_rank_host_code_cause_and_log() -> None:
    summary = first_cause(RAY_MESSAGE)
    assert summary == (
        "rank 1 on 10.77.0.3 exited with code 1: ModuleNotFoundError: No module named"
        f" 'sglang' (full log on 10.77.0.3: {LOG})"
    )
    assert "\n" not in summary and "ray::" not in summary and 'File "' not in summary


def test_last_error_line_when_the_log_has_no_exception() -> None:
    message = RAY_MESSAGE.split("Traceback (most recent")[0] + (
        "INFO loading weights\nNCCL error: unhandled system error\nshutting down\n"
    )
    assert ": NCCL error: unhandled system error (" in first_cause(message)


def test_unhealthy_engine_says_so() -> None:
    message = RAY_MESSAGE.replace(
        "engine exited before it was healthy", "engine not healthy after 60 s"
    )
    summary = first_cause(message)
    assert summary.startswith("rank 1 on 10.77.0.3: engine not healthy after 60 s; last output:")


def test_other_failures_keep_their_exception_line_only() -> None:
    message = (
        "The deployment failed to start 1 times in a row. See controller logs for details. Error:\n"
        "ray::ServeReplica:x:RouterHost.initialize_and_get_metadata() (pid=1, ip=10.77.0.1)\n"
        '  File "/x.py", line 3, in f\n'
        "RuntimeError: router did not answer on http://10.77.0.1:8000/health in 20 s"
    )
    summary = first_cause(message)
    assert summary.endswith(
        "RuntimeError: router did not answer on http://10.77.0.1:8000/health in 20 s"
    )
    assert "ray::" not in summary and 'File "' not in summary
    assert first_cause("placement group could not be scheduled") == (
        "placement group could not be scheduled"
    )


def test_status_never_shows_a_redis_password() -> None:
    from controlplane.local.secrets import redact_url as redacted

    assert redacted("redis://:s3cret@10.77.0.1:6380/0") == "redis://:***@10.77.0.1:6380/0"
    assert redacted("rediss://app:s3cret@redis.internal:6380/1") == (
        "rediss://app:***@redis.internal:6380/1"
    )
    assert redacted("redis://10.77.0.1:6380/0") == "redis://10.77.0.1:6380/0"
