"""Errors of the embedded cluster's start and of joining a cluster, as the user reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.backends.ray import cluster
from controlplane.backends.ray.keeper import FAILED, failure_text
from controlplane.errors import UserError

TARGET = cluster.Target("127.0.0.1:6379", "redis://127.0.0.1:1/0", embedded=False)


def test_a_ray_version_mismatch_names_both_versions_and_the_install() -> None:
    """The text is Ray's own, raised by its version check against other cluster metadata."""
    from ray._private.utils import check_version_info

    with pytest.raises(RuntimeError) as raised:
        check_version_info({"ray_version": "2.49.1", "python_version": "3.12.3"}, "here")
    error = cluster.connect_error(TARGET, f"RuntimeError: {raised.value}")
    text = str(error)
    assert "runs Ray 2.49.1 on Python 3.12.3" in text
    assert "pip install 'ray[serve]==2.49.1'" in text
    assert "check the address" not in text


def test_an_unreachable_address_is_about_the_address() -> None:
    text = str(cluster.connect_error(TARGET, "no answer in 30 s"))
    assert "cannot reach the Ray cluster at 127.0.0.1:6379" in text
    assert "To fix: check the address" in text


def test_a_dead_embedded_cluster_does_not_blame_an_address_nobody_set() -> None:
    embedded = cluster.Target("127.0.0.1:6379", "redis://x", embedded=True)
    text = str(cluster.connect_error(embedded, "no answer in 30 s"))
    assert "embedded Ray cluster" in text
    assert "RAY_ADDRESS" not in text


def test_the_keeper_reports_a_user_error_as_is_and_other_errors_with_their_cause() -> None:
    assert failure_text(UserError("no redis", fix="install it")) == "no redis To fix: install it"
    try:
        try:
            raise OSError(98, "Address already in use")
        except OSError as inner:
            raise RuntimeError("GCS did not start") from inner
    except RuntimeError as exc:
        text = failure_text(exc)
    assert text.startswith("RuntimeError: GCS did not start (caused by OSError:")
    assert "Address already in use" in text


def test_a_failed_keeper_start_raises_its_recorded_cause(tmp_path: Path) -> None:
    folder = tmp_path / "embedded"
    folder.mkdir()
    (folder / "keeper.log").write_text("older run\nTraceback ...\nValueError: boom\n")
    (folder / FAILED).write_text(json.dumps({"error": "redis-server is missing. To fix: x."}))
    error = cluster._start_failure(folder, 0, 1)
    expected = "the embedded Ray cluster did not start: redis-server is missing. To fix: x."
    assert str(error) == expected
    (folder / FAILED).unlink()
    error = cluster._start_failure(folder, len("older run\n"), 1)
    assert "did not start: ValueError: boom" in str(error)
    assert "keeper.log" in str(error)


def test_an_unwritable_state_dir_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=r"not writable.*GLMCTL_STATE_DIR"):
        cluster.start_embedded(blocker / "state", [], None)
