"""Fixtures shared by every tier: real servers on loopback, started and stopped per use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from controlplane.local.redis_server import LocalRedis

REPO = Path(__file__).resolve().parents[1]
TOPOLOGIES = REPO / "topologies"


@pytest.fixture
def redis_server() -> Iterator[LocalRedis]:
    """A real redis-server on a free loopback port, stopped after the test."""
    from controlplane.local.redis_server import LocalRedis

    server = LocalRedis.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def path_without(tmp_path: Path) -> Callable[[str], str]:
    """`path_without("redis-server")`: a PATH holding every program of this PATH but that one
    (symlinks in a temp folder), as on a machine where it is not installed."""
    import os
    import shutil

    def make(missing: str) -> str:
        folder = tmp_path / f"bin-without-{missing}"
        folder.mkdir(exist_ok=True)
        for directory in os.environ.get("PATH", "").split(os.pathsep):
            if not directory or not Path(directory).is_dir():
                continue
            for program in Path(directory).iterdir():
                link = folder / program.name
                if program.name != missing and not link.exists() and os.access(program, os.X_OK):
                    link.symlink_to(program)
        assert shutil.which(missing, path=str(folder)) is None
        return str(folder)

    return make
