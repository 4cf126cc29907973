"""Process-safe exclusive locks on files (engine venv builds, tiny checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path


class file_lock:
    """An exclusive `flock` on `path` for the duration of a `with` block (process-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the descriptor releases the lock
