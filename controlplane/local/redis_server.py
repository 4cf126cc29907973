"""A private `redis-server` on a free loopback port: the embedded default's router state.

Start it with `LocalRedis.start()`; `stop()` is idempotent. Persistence is off: router
state is soft state that routers rebuild (endpoints re-register, load is re-scraped).
With `password_file`, the server requires a password: generated on first start, kept in
that file (mode 0600) and reused by restarts; `url` then carries it (redact it before
printing: controlplane.local.secrets.redact_url). The password reaches redis-server
through its config file (mode 0600 in a private directory), never its command line.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.errors import UserError
from controlplane.local.ports import free_port, wait_port
from controlplane.local.secrets import (
    generate_password,
    read_secret,
    url_with_password,
    write_secret,
)


@dataclass
class LocalRedis:
    port: int
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="glmctl-redis-")))
    password: str | None = None
    password_file: Path | None = None

    @property
    def url(self) -> str:
        return url_with_password(f"redis://127.0.0.1:{self.port}/0", self.password)

    @classmethod
    def start(
        cls, port: int | None = None, timeout: float = 10.0, password_file: Path | None = None
    ) -> LocalRedis:
        """Start redis-server bound to 127.0.0.1; raises UserError if it is not installed.
        `password_file`: require the password in it (generated there if missing)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise UserError(
                "redis-server is not installed; glmctl starts one for router state.",
                fix="run `bash ops/install-system-deps.sh` (Debian: apt-get install"
                " redis-server), or set GLMCTL_REDIS_URL to an existing Redis.",
            )
        server = cls(port or free_port(), password_file=password_file)
        config = server._config_file()
        server.process = subprocess.Popen(
            [
                binary,
                *([str(config)] if config else []),
                "--port",
                str(server.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(server.workdir),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_port(server.port, timeout=timeout):
            server.stop()
            raise UserError(
                f"redis-server did not start on 127.0.0.1:{server.port} in {timeout:.0f} s.",
                fix="check that the port is free and retry.",
            )
        return server

    def _config_file(self) -> Path | None:
        """A redis.conf holding `requirepass` (0600), or None without a password file."""
        if self.password_file is None:
            return None
        if self.password_file.exists():
            self.password = read_secret(self.password_file)
        else:
            self.password = generate_password()
            write_secret(self.password_file, self.password)
        return write_secret(self.workdir / "redis.conf", f"requirepass {self.password}\n")

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, wait `down_for` seconds, start again on the same port (failure tests)."""
        port = self.port
        self.stop()
        time.sleep(down_for)
        fresh = LocalRedis.start(port=port, password_file=self.password_file)
        self.process, self.workdir = fresh.process, fresh.workdir
