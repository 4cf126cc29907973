"""Secrets: owner-only files, passwords in URLs only where needed, redacted when shown."""

from __future__ import annotations

from pathlib import Path

import redis

from controlplane.local.secrets import (
    generate_password,
    read_secret,
    redact_url,
    url_password,
    url_with_password,
    without_password,
    write_secret,
)


def test_secret_file_is_owner_only_from_the_start(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "deep" / "pw", "s3cret")
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_secret(path) == "s3cret"
    write_secret(path, "other")  # replaced, still 0600
    assert read_secret(path) == "other" and path.stat().st_mode & 0o777 == 0o600


def test_password_round_trip_and_redaction() -> None:
    password = generate_password()
    assert len(password) == 64 and password != generate_password()
    for base in ("redis://127.0.0.1:6379/0", "rediss://user@cache.example:6380/1"):
        url = url_with_password(base, password)
        assert url_password(url) == password
        assert password not in redact_url(url) and "***" in redact_url(url)
        assert password not in without_password(url)
        kwargs = redis.connection.parse_url(url)  # what redis-py will send
        assert kwargs["password"] == password
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert url_with_password("redis://h:1/0", None) == "redis://h:1/0"
    assert without_password("rediss://u:p@h:1/0") == "rediss://u@h:1/0"
