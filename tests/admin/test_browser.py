"""The admin site in real headless Chromium, against the fake AdminService.

Screenshots of every page land in test-artifacts/admin/ (laptop and phone widths).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from admin_web.app import create_app
from claudecode.v1 import admin_pb2
from tests.admin.browser import (
    LAPTOP,
    PHONE,
    ThreadServer,
    chromium,
    shot,
    skip_reason,
    watch_for_trouble,
)
from tests.admin.conftest import PASSWORDS, make_config
from tests.admin.fake_admin import FakeAdmin

pytestmark = pytest.mark.skipif(bool(skip_reason()), reason=skip_reason() or "ok")


@pytest.fixture(scope="module")
def site(fake: FakeAdmin) -> Iterator[str]:
    with ThreadServer(create_app(make_config(fake.addr, keepalive_seconds=1.0))) as server:
        yield server.url


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(chrome: Any, site: str) -> Iterator[Any]:
    context = chrome.new_context(base_url=site, viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def sign_in(page: Any, username: str, password: str) -> None:
    page.goto("/login")
    page.fill("#f-username", username)
    page.fill("#f-password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_first_sign_in_forces_password_change(page: Any, fake: FakeAdmin) -> None:
    printed = "printed-Pw-4711"
    fake.add_user("boss", printed, "admin", must_change=True)
    trouble = watch_for_trouble(page)
    page.goto("/")
    assert page.url.endswith("/login")
    shot(page, "login")
    sign_in(page, "boss", printed)
    page.wait_for_url("**/account/password")
    assert "Choose your own" in page.inner_text("main")
    page.goto("/keys")
    assert page.url.endswith("/account/password"), "must change the password first"
    page.fill("#f-current_password", printed)
    page.fill("#f-new_password", "short")
    page.fill("#f-confirm_password", "short")
    page.click("main button[type=submit]")
    assert "at least 8 characters" in page.inner_text("main")
    shot(page, "password-change-error")
    page.fill("#f-current_password", printed)
    page.fill("#f-new_password", "a-much-better-passphrase")
    page.fill("#f-confirm_password", "a-much-better-passphrase")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))
    assert "Your password was changed" in page.inner_text("main")
    assert fake.passwords["boss"] == "a-much-better-passphrase"
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    assert "signed out" in page.inner_text("main")
    assert trouble == []


def test_every_page_looks_right(page: Any, fake: FakeAdmin) -> None:
    ids: dict[str, str] = fake.ids  # type: ignore[attr-defined]
    trouble = watch_for_trouble(page)
    sign_in(page, "admin", PASSWORDS["admin"])
    page.wait_for_url(re.compile(r".*/$"))
    page.wait_for_selector("#live-state.on")
    shot(page, "dashboard")
    for name, path in [
        ("keys", "/keys"),
        ("key", f"/keys/{ids['ci']}"),
        ("logs", "/logs"),
        ("logs-filtered", "/logs?status=429&since=24h"),
        ("log", f"/logs/{ids['xss_log']}"),
        ("sessions", "/sessions"),
        ("session", f"/sessions/{ids['session']}"),
        ("config", "/config"),
        ("users", "/users"),
        ("not-found", "/no-such-page"),
        ("logs-empty", "/logs?model=nothing"),
    ]:
        page.goto(path)
        shot(page, name)
    page.set_viewport_size(PHONE)
    for name, path in [
        ("phone-dashboard", "/"),
        ("phone-keys", "/keys"),
        ("phone-log", f"/logs/{ids['xss_log']}"),
        ("phone-config", "/config"),
    ]:
        page.goto(path)
        shot(page, name)
    page.goto("/login")  # signed in: goes to the dashboard
    assert trouble == [], trouble


def test_create_edit_revoke_key(page: Any, fake: FakeAdmin) -> None:
    trouble = watch_for_trouble(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, "admin", PASSWORDS["admin"])
    page.goto("/keys")
    page.fill("#f-rpm", "20")
    page.fill("#f-expires", "2001-01-01")
    page.click("#create button[type=submit]")
    create = page.inner_text("#create")
    assert "Give the key a name" in create and "Choose a date in the future" in create
    shot(page, "key-create-error")
    page.fill("#f-name", "browser key")
    page.fill("#f-expires", "")
    page.fill("#f-allowed_tools", "Read, Grep")
    page.click("#create button[type=submit]")
    secret = page.inner_text("#secret").strip()
    assert secret.startswith("sk-ccapi-")
    copy = page.locator("[data-copy]")
    assert copy.is_visible()
    copy.click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    shot(page, "key-created")
    page.click("text=Key details")
    assert secret not in page.content()
    page.fill("#f-tpm", "5000")
    page.click("main form[action^='/keys/'] button:has-text('Save changes')")
    assert "Saved: limits." in page.inner_text("main")
    key = next(k for k in fake.keys.values() if k.name == "browser key")
    assert key.limits.tokens_per_minute == 5000 and key.limits.requests_per_minute == 20
    page.click("button:has-text('Revoke key')")
    assert "is revoked" in page.inner_text("main")
    assert fake.keys[key.id].revoked_at
    assert trouble == [], trouble


def test_viewer_cannot_create_keys(page: Any, fake: FakeAdmin) -> None:
    sign_in(page, "viewer", PASSWORDS["viewer"])
    page.goto("/keys")
    assert page.locator("form[action='/keys']").count() == 0
    assert "read-only" in page.inner_text("main")
    assert page.locator("nav >> text=Users").count() == 0
    shot(page, "viewer-keys")
    token = page.get_attribute("form[action='/logout'] input[name=csrf_token]", "value")
    before = len(fake.keys)
    # A hand-made POST with a valid session and CSRF token: the site refuses it.
    response = page.request.post("/keys", form={"name": "sneaky", "csrf_token": token})
    assert response.status == 403
    assert "Read-only access" in response.text()
    assert len(fake.keys) == before
    page.goto("/users")
    assert "Admins only" in page.inner_text("main")


def test_post_without_csrf_token_is_refused(page: Any, fake: FakeAdmin) -> None:
    sign_in(page, "admin", PASSWORDS["admin"])
    page.goto("/keys")
    page.fill("#f-name", "no-token")
    page.locator("#create input[name=csrf_token]").evaluate("el => el.remove()")
    page.click("#create button[type=submit]")
    assert "Form expired" in page.inner_text("main")
    shot(page, "csrf-refused")
    assert all(k.name != "no-token" for k in fake.keys.values())
    response = page.request.post("/keys", form={"name": "no-token"})
    assert response.status == 403


def test_throttled_after_repeated_wrong_passwords(page: Any, fake: FakeAdmin) -> None:
    fake.add_user("victim", "victim-password-1", "viewer")
    for _ in range(5):
        sign_in(page, "victim", "guess")
        assert "Wrong username or password" in page.inner_text("main")
    sign_in(page, "victim", "victim-password-1")
    text = page.inner_text("main")
    assert "Too many failed sign-ins" in text and "Try again in" in text
    shot(page, "login-throttled")
    fake.failures.clear()  # the throttle also holds this address; free it for later tests


def test_script_in_log_renders_as_text(page: Any, fake: FakeAdmin) -> None:
    ids: dict[str, str] = fake.ids  # type: ignore[attr-defined]
    trouble = watch_for_trouble(page)
    sign_in(page, "admin", PASSWORDS["admin"])
    page.goto(f"/logs/{ids['xss_log']}")
    body = page.inner_text("main")
    assert "<script>alert(1)</script>" in body
    assert "<img src=x onerror=alert(2)>" in body
    assert page.locator("main script").count() == 0 and page.locator("main img").count() == 0
    page.goto(f"/sessions/{ids['session']}")
    assert "<script>alert(1)</script>" in page.inner_text("main")
    assert trouble == [], trouble


def test_live_feed_shows_new_requests(page: Any, fake: FakeAdmin) -> None:
    sign_in(page, "admin", PASSWORDS["admin"])
    page.wait_for_selector("#live-state.on")
    entry = fake.finish_request(
        key_id="key_feed",
        key_name="<script>feed</script>",
        endpoint="/v1/responses",
        model="claude-sonnet-4-5",
        status=200,
        latency_ms=1234,
    )
    row = page.locator("#feed tr").first
    row.locator(f"a[href='/logs/{entry.id}']").wait_for()
    assert "<script>feed</script>" in row.inner_text()
    assert page.locator("#feed script").count() == 0
    shot(page, "dashboard-live")


def test_live_feed_lists_each_request_once(page: Any, fake: FakeAdmin) -> None:
    # The page lists the latest requests and the watch announces recent ones
    # again (on connecting, after a reconnect): each must show once.
    sign_in(page, "admin", PASSWORDS["admin"])
    page.wait_for_selector("#live-state.on")
    shown = page.locator("#feed tr").first.get_attribute("data-id")
    assert shown
    again = next(entry for entry in fake.logs if entry.id == shown)

    def finish() -> str:
        entry = fake.finish_request(key_id="key_once", key_name="once", status=200,
                                    endpoint="/v1/responses", model="claude-sonnet-4-5")
        page.locator(f"#feed a[href='/logs/{entry.id}']").wait_for()
        return entry.id

    first = finish()  # the watch is connected from here on
    fake.run(lambda: fake.publish(
        admin_pb2.WatchEventsResponse(time_ms=again.time_ms, request_finished=again)))
    fake.run(lambda: fake.publish(
        admin_pb2.WatchEventsResponse(time_ms=again.time_ms, request_finished=fake.logs[0])))
    finish()  # events arrive in order: the repeats came before this one
    assert page.locator(f"#feed tr[data-id='{shown}']").count() == 1
    assert page.locator(f"#feed tr[data-id='{first}']").count() == 1
