"""Admin-site users in the database: sign-in throttling and sign-in tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.models import LoginFailure
from core_service.errors import ResourceExhausted, Unauthenticated
from core_service.users import FIRST_LOCK, MAX_FAILURES_PER_ADDRESS, UserStore

PASSWORD = "right-password-1"


@pytest.fixture
def users(sessions: sessionmaker[Session]) -> UserStore:
    store = UserStore(sessions)
    store.create("owner", "admin", PASSWORD)
    return store


def fail(users: UserStore, address: str, username: str = "owner", times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Unauthenticated):
            users.authenticate(username, "wrong-guess", address)


def test_a_lock_is_per_account_and_address(users: UserStore) -> None:
    fail(users, "10.0.0.1", times=5)
    with pytest.raises(ResourceExhausted) as locked:
        users.authenticate("owner", PASSWORD, "10.0.0.1")
    assert 0 < (locked.value.retry_after_seconds or 0) <= FIRST_LOCK.total_seconds()
    # The owner elsewhere is not locked out by someone else's guesses, and
    # signing in there does not reset the guesser's lock.
    assert users.authenticate("owner", PASSWORD, "10.0.0.2").username == "owner"
    with pytest.raises(ResourceExhausted):
        users.authenticate("owner", PASSWORD, "10.0.0.1")
    [lock] = users.locks()
    assert (lock.username, lock.address, lock.failures) == ("owner", "10.0.0.1", 5)
    users.unlock("owner")
    assert users.locks() == []
    assert users.authenticate("owner", PASSWORD, "10.0.0.1").username == "owner"


def test_each_further_failure_doubles_the_wait(
    users: UserStore, sessions: sessionmaker[Session]
) -> None:
    # Five failures long enough ago that their first lock is over.
    past = datetime.now(UTC) - FIRST_LOCK - timedelta(seconds=5)
    with sessions.begin() as db:
        db.add_all(LoginFailure(username="owner", address="10.0.0.3", time=past)
                   for _ in range(5))
    fail(users, "10.0.0.3")  # allowed again, and wrong once more
    with pytest.raises(ResourceExhausted) as locked:
        users.authenticate("owner", PASSWORD, "10.0.0.3")
    wait = locked.value.retry_after_seconds or 0
    assert FIRST_LOCK.total_seconds() < wait <= 2 * FIRST_LOCK.total_seconds()


def test_an_address_guessing_many_accounts_is_locked_for_all(users: UserStore) -> None:
    for i in range(MAX_FAILURES_PER_ADDRESS):
        fail(users, "10.0.0.4", username=f"guess{i % 4}")
    with pytest.raises(ResourceExhausted):
        users.authenticate("owner", PASSWORD, "10.0.0.4")
    assert any(lock.username == "" and lock.address == "10.0.0.4" for lock in users.locks())
    assert users.authenticate("owner", PASSWORD, "10.0.0.5").username == "owner"


def test_sign_in_tokens_end_on_sign_out_and_password_change(users: UserStore) -> None:
    token = users.start_sign_in("owner")
    assert token and users.start_sign_in("owner") == token
    assert users.check_sign_in("owner", token) is not None
    assert users.check_sign_in("owner", "forged") is None
    assert users.check_sign_in("owner", "") is None
    new = users.end_sign_ins("owner")
    assert new != token and users.check_sign_in("owner", token) is None
    users.set_password("owner", "another-password-1", must_change=True)
    assert users.check_sign_in("owner", new) is None
    after = users.start_sign_in("owner")
    assert users.check_sign_in("owner", after) is not None
    users.update("owner", None, disabled=True)
    assert users.check_sign_in("owner", after) is None
