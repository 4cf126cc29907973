"""Authentication (pure): which requests need a key, 401 / 403, the secure default."""

from __future__ import annotations

import json

import pytest

from controlplane.errors import UserError
from controlplane.router.auth import (
    Authenticator,
    check_model,
    hash_secret,
    is_loopback,
    keys_required,
    refuse_open_bind,
)
from controlplane.router.validation import RequestProblem

RECORD = {"name": "team", "models": ["glm-4.5"], "rpm": 60, "expires_at": None}


def _records(**extra: object) -> dict[str, dict[str, object]]:
    return {hash_secret("sk-good"): json.loads(json.dumps({**RECORD, **extra}))}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("router.internal", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_which_requests_need_a_key() -> None:
    assert not keys_required("auto", "127.0.0.1", keys_exist=False)
    assert keys_required("auto", "127.0.0.1", keys_exist=True)
    assert keys_required("auto", "0.0.0.0", keys_exist=False)
    assert keys_required("api_keys", "127.0.0.1", keys_exist=False)
    assert not keys_required("none", "0.0.0.0", keys_exist=True)


def test_401_for_missing_wrong_and_expired_keys() -> None:
    auth = Authenticator("api_keys", "127.0.0.1")
    for header in (None, "", "Bearer ", "Bearer sk-wrong", "sk-wrong"):
        with pytest.raises(RequestProblem) as caught:
            auth.authenticate(header, _records())
        assert caught.value.status == 401 and caught.value.kind == "authentication_error"
    key = auth.authenticate("Bearer sk-good", _records())
    assert key is not None and key.name == "team" and key.limits.rpm == 60
    assert auth.authenticate("bearer sk-good", _records()) is not None  # scheme: any case
    expired = _records(expires_at=1000.0)
    with pytest.raises(RequestProblem) as caught:
        auth.authenticate("Bearer sk-good", expired, now=1000.0)
    assert caught.value.status == 401
    assert auth.authenticate("Bearer sk-good", expired, now=999.0) is not None


def test_403_for_a_model_the_key_may_not_use() -> None:
    key = Authenticator("api_keys", "::1").authenticate("Bearer sk-good", _records())
    check_model(key, "glm-4.5")
    with pytest.raises(RequestProblem) as caught:
        check_model(key, "glm-4.5-air")
    assert caught.value.status == 403 and "glm-4.5-air" in caught.value.message
    check_model(None, "anything")  # no key needed


def test_revoked_key_is_gone_with_the_next_records() -> None:
    auth = Authenticator("auto", "127.0.0.1")
    assert auth.authenticate("Bearer sk-good", _records()) is not None
    other = {hash_secret("sk-other"): RECORD}
    with pytest.raises(RequestProblem):
        auth.authenticate("Bearer sk-good", other)  # a refresh replaced the records


def test_secure_default_refuses_an_exposed_router_without_keys() -> None:
    with pytest.raises(UserError) as caught:
        refuse_open_bind("auto", "0.0.0.0", key_count=0)
    assert "To fix:" in str(caught.value) and "glmctl keys create" in str(caught.value)
    with pytest.raises(UserError):
        refuse_open_bind("auto", "10.1.2.3", key_count=None)  # Redis unreadable
    refuse_open_bind("auto", "0.0.0.0", key_count=1)
    refuse_open_bind("auto", "127.0.0.1", key_count=0)
    refuse_open_bind("none", "0.0.0.0", key_count=0)
    refuse_open_bind("api_keys", "0.0.0.0", key_count=0)
