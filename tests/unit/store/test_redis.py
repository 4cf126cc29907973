"""The one Redis client factory: same timeouts everywhere, TLS for rediss://, and no
password in any message it makes (clients are built, never connected: no server needed)."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio

from controlplane.errors import UserError
from controlplane.store import redis as store

SECRET = "s3cr#t/pw"  # characters that URL-encode
URL = "redis://:s3cr%23t%2Fpw@127.0.0.1:6390/0"


def test_redact_and_scrub_hide_the_raw_and_encoded_password() -> None:
    assert store.redact(URL) == "redis://:***@127.0.0.1:6390/0"
    text = f"failed for {URL} with password {SECRET}"
    scrubbed = store.scrub(text, URL)
    assert SECRET not in scrubbed and "s3cr%23t%2Fpw" not in scrubbed
    assert store.scrub("no url here", "redis://127.0.0.1:6379/0") == "no url here"


def test_sync_and_async_clients_share_timeouts() -> None:
    sync = store.sync_client(URL)
    kwargs = sync.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == store.SOCKET_TIMEOUT_S
    assert kwargs["socket_connect_timeout"] == store.CONNECT_TIMEOUT_S
    assert kwargs["password"] == SECRET
    fast = store.async_client(URL, socket_timeout=0.5, retries=0)
    fast_kwargs = fast.connection_pool.connection_kwargs
    assert fast_kwargs["socket_timeout"] == 0.5 and fast_kwargs["socket_connect_timeout"] == 0.5
    sync.close()


def test_rediss_url_makes_a_tls_connection() -> None:
    client = store.sync_client("rediss://:pw@redis.example:6380/0")
    assert client.connection_pool.connection_class is redis.connection.SSLConnection
    aclient = store.async_client("rediss://:pw@redis.example:6380/0")
    assert aclient.connection_pool.connection_class is redis.asyncio.connection.SSLConnection
    plain = store.sync_client(URL)
    assert plain.connection_pool.connection_class is redis.connection.Connection


def test_a_malformed_url_is_a_user_error_without_the_password() -> None:
    with pytest.raises(UserError) as caught:
        store.sync_client("http://:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in str(caught.value) and caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (redis.exceptions.ConnectionError(f"Error connecting with {SECRET}"),
         store.RedisUnreachable),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), store.RedisUnreachable),
        (redis.exceptions.AuthenticationError("invalid password"), store.RedisAuthError),
    ],
)  # fmt: skip
def test_failures_become_user_errors_without_the_password(
    exc: Exception, kind: type[UserError]
) -> None:
    with pytest.raises(kind) as caught, store.connection(URL):
        raise exc
    message = str(caught.value)
    assert SECRET not in message and "***" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError), store.connection(URL):
        raise KeyError("not a Redis failure")


def test_describe_for_logs() -> None:
    line = store.describe(URL, redis.exceptions.ConnectionError(f"refused ({SECRET})"))
    assert SECRET not in line and line.startswith("ConnectionError: ")


def test_key_names_have_one_home() -> None:
    from controlplane.backends.ray import records, serve_app

    assert serve_app.REPLICAS_KEY is store.REPLICAS_KEY
    assert records.DEPLOYMENT_KEY is store.DEPLOYMENT_KEY
    assert store.router_namespace("d") == "glmctl-d"


def test_the_kubernetes_renderer_needs_no_ray_serve_runtime() -> None:
    import subprocess
    import sys

    code = (
        "import sys, controlplane.render.k8s\n"
        "bad = [m for m in sys.modules if m.endswith('serve_app') or m == 'ray']\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_failure_that_reaches_the_cli_is_a_user_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Code that used its client outside `connection` (deployment records): the CLI turns a
    Redis failure into this UserError (exit 2), scrubbed of the password glmctl was given
    by GLMCTL_REDIS_URL and GLMCTL_REDIS_PASSWORD; anything else stays a bug."""
    from controlplane.settings import get_settings

    monkeypatch.setenv("GLMCTL_REDIS_URL", "redis://127.0.0.1:6390/0")
    monkeypatch.setenv("GLMCTL_REDIS_PASSWORD", SECRET)
    get_settings.cache_clear()
    try:
        refused = redis.exceptions.ConnectionError(f"Error 111 connecting ({SECRET}).")
        error = store.uncaught_error(refused)
        assert isinstance(error, store.RedisUnreachable)
        assert SECRET not in str(error) and "cannot reach Redis: Error 111" in str(error)
        auth = store.uncaught_error(redis.exceptions.AuthenticationError("invalid password"))
        assert isinstance(auth, store.RedisAuthError)
        assert store.uncaught_error(KeyError("no Redis failure")) is None
    finally:
        get_settings.cache_clear()
