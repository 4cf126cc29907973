"""Redis: the key names glmctl writes and the one way to make a client.

Every client glmctl makes comes from `sync_client` or `async_client`: the same connect and
socket timeouts, TLS for `rediss://` URLs (redis-py's `from_url` turns the scheme into an
SSL connection; `?ssl_cert_reqs=` and `?ssl_ca_certs=` in the URL pass through), and one
way to say what went wrong. A Redis password travels inside the URL
(`redis://:PASSWORD@host:port/0`, put there from GLMCTL_REDIS_PASSWORD by settings.py), so
anything shown to a person goes through `redact` (the URL) or `scrub` (any text that may
quote it); `connection` turns failures into a UserError that holds neither.

Contract: no function here puts a password in an exception, a log line or a return value
meant for display.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from controlplane.errors import UserError
from controlplane.local.secrets import REDACTED, redact_url

SOCKET_TIMEOUT_S = 5.0  # one command; the router's hot path passes its own (StateConfig)
CONNECT_TIMEOUT_S = 5.0

# Keys of one deployment (besides the router's own, which live under router_namespace).
DEFAULT_NAMESPACE = "glmctl"  # endpoints of a router started by hand (`glmctl router serve`)
DEPLOYMENT_KEY = "glmctl:deployment:{name}"  # the applied record (backends/ray/records.py)
DEPLOYMENTS_KEY = "glmctl:deployments"  # set of applied deployment names
REPLICAS_KEY = "glmctl:replicas:{name}"  # hash: replica id -> JSON of where its ranks run
FAILURES_KEY = "glmctl:failures:{name}"  # list: replica failures (autoscale/restarts.py)
STOPPED_KEY = "glmctl:restarts-stopped:{name}"  # restarts stopped: why (cleared by apply)
ROUTER_KEY = "glmctl:router:{name}"  # the URL clients reach the deployment's router at


def router_namespace(name: str) -> str:
    """Redis namespace of one deployment's endpoints (each deployment has its own router)."""
    return f"glmctl-{name}"


class RedisUnreachable(UserError):
    """Redis did not answer (down, wrong address, timeout)."""


class RedisAuthError(UserError):
    """Redis refused the password (or wants one that was not given)."""


def redact(url: str) -> str:
    """`url` with its password replaced by ***: what every message shows."""
    return redact_url(url)


def scrub(text: str, url: str) -> str:
    """`text` with `url`'s password (raw or URL-encoded) replaced by ***."""
    password = urlsplit(url).password
    if not password:
        return text
    for secret in {password, unquote(password)}:
        text = text.replace(secret, REDACTED)
    return text


def describe(url: str, exc: BaseException) -> str:
    """`exc` for a log line: its type and message, scrubbed of `url`'s password."""
    return f"{type(exc).__name__}: {scrub(str(exc), url)} (Redis at {redact(url)})"


def _options(socket_timeout: float | None, decode_responses: bool) -> dict[str, Any]:
    timeout = SOCKET_TIMEOUT_S if socket_timeout is None else socket_timeout
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": min(CONNECT_TIMEOUT_S, timeout),
        "decode_responses": decode_responses,
    }


def sync_client(
    url: str, *, socket_timeout: float | None = None, decode_responses: bool = False
) -> Any:
    """A blocking redis-py client for `url` (close it when done; `connection` does)."""
    import redis

    try:
        return redis.Redis.from_url(url, **_options(socket_timeout, decode_responses))
    except ValueError as exc:  # a malformed URL: its text may quote the password
        raise UserError(
            f"`{redact(url)}` is not a Redis URL: {scrub(str(exc), url)}",
            fix="use redis://[:PASSWORD@]HOST:PORT[/DB] or rediss:// for TLS.",
        ) from None


def async_client(
    url: str, *, socket_timeout: float | None = None, retries: int | None = None
) -> Any:
    """An asyncio redis-py client for `url`; `retries` 0: fail at once (the router's own
    breaker decides when to try again)."""
    import redis.asyncio as aioredis

    options = _options(socket_timeout, False)
    if retries is not None:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options["retry"] = Retry(NoBackoff(), retries)
    try:
        return aioredis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise UserError(
            f"`{redact(url)}` is not a Redis URL: {scrub(str(exc), url)}",
            fix="use redis://[:PASSWORD@]HOST:PORT[/DB] or rediss:// for TLS.",
        ) from None


def user_error(url: str, exc: BaseException) -> UserError | None:
    """The UserError a person should see for redis-py's `exc`; None if it is no Redis
    connection or auth failure. Neither its message nor its cause holds the password.
    `url` "": not known (`uncaught_error`); the message then names no URL."""
    import redis

    reason = scrub(str(exc), url)
    where = f" at {redact(url)}" if url else ""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return RedisAuthError(
            f"Redis{where} refused the password: {reason}.",
            fix="give the deployment's Redis password (GLMCTL_REDIS_PASSWORD, or in the URL).",
        )
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return RedisUnreachable(
            f"cannot reach Redis{where}: {reason}",
            fix="start the deployment (or pass the right --redis-url / GLMCTL_REDIS_URL).",
        )
    return None


def uncaught_error(exc: BaseException) -> UserError | None:
    """`user_error` for a redis-py failure that reached the CLI from code that used its
    client outside `connection` (deployment records, status): the URL is not known there.
    redis-py's text names the host and port, never the password; the password glmctl was
    given (GLMCTL_REDIS_URL / GLMCTL_REDIS_PASSWORD) is scrubbed from it all the same.
    None for anything else (redis-py never loaded: it raised nothing)."""
    if "redis" not in sys.modules:
        return None
    error = user_error("", exc)
    if error is None:
        return None
    try:
        from controlplane.settings import get_settings

        known = get_settings().redis_url_with_password()
    except UserError:  # a malformed variable was reported before any Redis was tried
        known = None
    if known:
        error.message = scrub(error.message, known)
        error.args = (error.message,)
    return error


@contextmanager
def connection(
    url: str, *, socket_timeout: float | None = None, decode_responses: bool = False
) -> Iterator[Any]:
    """A short-lived blocking client; connection and auth failures become a UserError that
    never shows the password (`from None`: the original text is not chained either)."""
    client = sync_client(url, socket_timeout=socket_timeout, decode_responses=decode_responses)
    try:
        yield client
    except Exception as exc:
        error = user_error(url, exc)
        if error is None:
            raise
        raise error from None
    finally:
        client.close()
