"""Secrets on disk and in URLs: generate, store owner-only, never print.

A Redis password travels inside the Redis URL (`redis://:PASSWORD@host:port/0`, which
redis-py reads); `redact_url` is what every message, status line and log shows instead.
Files holding a secret are created with mode 0600 (owner read/write only) from the start,
never chmod-ed after a world-readable moment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

REDACTED = "***"


def generate_password() -> str:
    """256 random bits as hex: safe in a URL, in redis.conf and on a command line."""
    return secrets.token_hex(32)


def write_secret(path: Path, secret: str) -> Path:
    """Write `secret` to `path` with mode 0600 (replacing any older file atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    tmp.replace(path)
    return path


def read_secret(path: Path) -> str:
    return path.read_text().strip()


def url_with_password(url: str, password: str | None) -> str:
    """`url` with `password` as its Redis password (an existing one is replaced)."""
    if not password:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def url_password(url: str) -> str | None:
    return urlsplit(url).password


def redact_url(url: str) -> str:
    """`url` without its password (`redis://:***@host:port/0`): safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{parts.username or ''}:{REDACTED}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def without_password(url: str) -> str:
    """`url` with no credentials at all (for a command line; the password goes elsewhere)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    user = parts.username
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))
