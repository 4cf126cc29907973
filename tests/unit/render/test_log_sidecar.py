"""The worker pods' `engine-logs` sidecar script under a real `sh`: it prints the lines of
every log file in the folder, files created after it started included, each prefixed with
the file's name (what `kubectl logs POD -c engine-logs` then shows)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from controlplane.render.k8s.worker_pod import FOLLOW_LOGS, LOG_DIR


def _wait_for(path: Path, text: str, timeout: float = 30.0) -> str:  # a loaded CI box
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = path.read_text()
        if text in seen:
            return seen
        time.sleep(0.1)
    return path.read_text()


def test_the_sidecar_follows_old_and_new_log_files(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "dep-r1-rank0.log").write_text("first line\n")
    out = tmp_path / "out.txt"
    script = FOLLOW_LOGS.replace(LOG_DIR, str(folder))
    with out.open("w") as sink:
        shell = subprocess.Popen(["sh", "-c", script], stdout=sink, start_new_session=True)
    try:
        assert "[dep-r1-rank0.log] first line" in _wait_for(out, "first line")
        with (folder / "dep-r1-rank0.log").open("a") as log:
            log.write("second line\n")
        (folder / "dep-r2-rank1.log").write_text("other replica\n")  # created later
        seen = _wait_for(out, "other replica")
        assert "[dep-r1-rank0.log] second line" in _wait_for(out, "second line")
        assert "[dep-r2-rank1.log] other replica" in seen
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        try:
            shell.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait(timeout=10)
