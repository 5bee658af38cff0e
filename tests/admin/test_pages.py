"""Fast tests of the admin site: falcon's test client against the fake AdminService."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import falcon.testing
import pytest

from admin_web.app import create_app
from admin_web.sessions import COOKIE_NAME, SessionCodec
from claudecode.v1 import admin_pb2, agent_pb2, events_pb2, sessions_pb2
from tests.admin.conftest import PASSWORDS, Browser, make_config
from tests.admin.fake_admin import FakeAdmin
from tests.facade.fake_core import free_port


def ids(fake: FakeAdmin) -> dict[str, str]:
    found: dict[str, str] = fake.ids  # type: ignore[attr-defined]
    return found


# Sign-in, sessions, CSRF ---------------------------------------------------------


def test_pages_need_sign_in(browser: Browser) -> None:
    for path in ("/", "/keys", "/logs", "/sessions", "/config", "/users"):
        result = browser.get(path)
        assert result.status_code == 303, path
        assert result.headers["location"].startswith("/login")
    assert browser.get("/keys").headers["location"] == "/login?next=%2Fkeys"


def test_login_page_and_security_headers(browser: Browser) -> None:
    result = browser.get("/login")
    assert result.status_code == 200
    assert "Sign in" in result.text
    csp = result.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert result.headers["x-frame-options"] == "DENY"
    assert result.headers["x-content-type-options"] == "nosniff"
    assert result.headers["cache-control"] == "no-store"
    cookie = result.cookies[COOKIE_NAME]
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure
    # Static files are served with the same headers.
    css = browser.get("/static/app.css")
    assert css.status_code == 200 and "frame-ancestors" in css.headers["content-security-policy"]


def test_secure_cookie_behind_https(browser: Browser) -> None:
    result = browser.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert result.cookies[COOKIE_NAME].secure
    assert "strict-transport-security" in result.headers


def test_sign_in_rotates_session_and_sign_out_works(browser: Browser) -> None:
    browser.get("/login")
    before_cookie, before_csrf = browser.cookies[COOKIE_NAME], browser.csrf
    result = browser.post(
        "/login", {"username": "admin", "password": PASSWORDS["admin"], "next": "/keys"}
    )
    assert result.status_code == 303 and result.headers["location"] == "/keys"
    page = browser.get("/keys")
    assert page.status_code == 200
    assert browser.csrf != before_csrf
    assert browser.cookies[COOKIE_NAME] != before_cookie
    # The pre-sign-in token no longer works.
    assert browser.post("/logout", {"csrf_token": before_csrf}, csrf=False).status_code == 403
    out = browser.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert browser.get("/").status_code == 303
    assert "You are signed out" in browser.get("/login").text


def test_wrong_password(browser: Browser) -> None:
    browser.remote_addr = "10.0.0.9"
    result = browser.login("admin", "not-the-password")
    assert result.status_code == 401
    assert "Wrong username or password" in result.text
    assert COOKIE_NAME in browser.cookies and browser.get("/").status_code == 303


def test_open_redirect_is_refused(browser: Browser) -> None:
    browser.get("/login")
    result = browser.post(
        "/login", {"username": "admin", "password": PASSWORDS["admin"], "next": "//evil.example/"}
    )
    assert result.headers["location"] == "/"


def test_post_without_csrf_token_is_refused(browser: Browser, fake: FakeAdmin) -> None:
    browser.get("/login")
    result = browser.post(
        "/login", {"username": "admin", "password": PASSWORDS["admin"]}, csrf=False
    )
    assert result.status_code == 403
    assert "security token" in result.text
    browser.login("admin")
    before = len(fake.keys)
    assert browser.post("/keys", {"name": "sneaky"}, csrf=False).status_code == 403
    assert (
        browser.post("/keys", {"name": "sneaky", "csrf_token": "forged"}, csrf=False).status_code
        == 403
    )
    assert len(fake.keys) == before


def test_cross_origin_post_is_refused(admin: Browser) -> None:
    result = admin.post(
        "/keys",
        {"name": "x"},
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://evil.example",
        },
    )
    assert result.status_code == 403


def test_throttling_message(app: Any, fake: FakeAdmin) -> None:
    fake.add_user("target", "target-password-1", "viewer")
    b = Browser(falcon.testing.TestClient(app), remote_addr="10.1.1.1")
    for _ in range(5):
        assert b.login("target", "wrong-password").status_code == 401
    result = b.login("target", "wrong-password")
    assert result.status_code == 429
    assert "Too many failed sign-ins" in result.text
    assert "Try again in" in result.text
    assert int(result.headers["retry-after"]) > 0
    # Even the right password waits until the throttle ends.
    assert b.login("target", "target-password-1").status_code == 429


def test_first_sign_in_must_change_password(app: Any, fake: FakeAdmin) -> None:
    fake.add_user("newbie", PASSWORDS["newbie"], "admin", must_change=True)
    b = Browser(falcon.testing.TestClient(app), remote_addr="10.2.2.2")
    result = b.login("newbie")
    assert result.headers["location"] == "/account/password"
    for path in ("/", "/keys", "/config"):
        assert b.get(path).headers["location"] == "/account/password"
    page = b.get("/account/password")
    assert "Choose your own" in page.text
    bad = b.post(
        "/account/password",
        {
            "current_password": PASSWORDS["newbie"],
            "new_password": "short",
            "confirm_password": "short",
        },
    )
    assert bad.status_code == 400 and "at least 8 characters" in bad.text
    wrong = b.post(
        "/account/password",
        {
            "current_password": "nope-nope",
            "new_password": "brand-new-pass-1",
            "confirm_password": "brand-new-pass-1",
        },
    )
    assert wrong.status_code == 400 and "current password is wrong" in wrong.text
    core_says_no = b.post(
        "/account/password",
        {
            "current_password": PASSWORDS["newbie"],
            "new_password": "password123",
            "confirm_password": "password123",
        },
    )
    assert "too common" in core_says_no.text
    ok = b.post(
        "/account/password",
        {
            "current_password": PASSWORDS["newbie"],
            "new_password": "brand-new-pass-1",
            "confirm_password": "brand-new-pass-1",
        },
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert b.get("/").status_code == 200
    assert fake.passwords["newbie"] == "brand-new-pass-1"
    assert not fake.users["newbie"].must_change_password


def test_idle_sessions_expire() -> None:
    codec = SessionCodec("k", idle_timeout_seconds=1)
    from admin_web.sessions import Session

    value = codec.dumps(Session(username="admin", role=admin_pb2.USER_ROLE_ADMIN))
    assert codec.loads(value) is not None
    time.sleep(2.1)
    assert codec.loads(value) is None
    assert codec.loads(value[:-2] + "xx") is None


def test_disabled_user_is_signed_out(fake: FakeAdmin) -> None:
    app = create_app(make_config(fake.addr, role_refresh_seconds=0))
    fake.add_user("leaver", "leaver-password-1", "admin")
    b = Browser(falcon.testing.TestClient(app), remote_addr="10.3.3.3")
    b.login("leaver", "leaver-password-1")
    assert b.get("/keys").status_code == 200
    fake.users["leaver"].disabled = True
    result = b.get("/keys")
    assert result.status_code == 303 and result.headers["location"] == "/login"
    assert "no longer active" in b.get("/login").text


def test_every_call_carries_token_and_actor(admin: Browser, fake: FakeAdmin) -> None:
    fake.calls.clear()
    admin.get("/keys")
    method, md = fake.calls[-1]
    assert method == "ListKeys"
    assert md["x-ccapi-admin-token"] and md["x-ccapi-actor"] == "admin"


# Pages ---------------------------------------------------------------------------


def test_every_page_renders(admin: Browser, fake: FakeAdmin) -> None:
    i = ids(fake)
    pages = [
        "/",
        "/?range=1h",
        "/?range=7d",
        "/?range=30d",
        "/keys",
        "/keys?revoked=true",
        f"/keys/{i['prod']}",
        f"/keys/{i['old']}",
        "/logs",
        "/logs?status=429",
        f"/logs?key_id={i['ci']}&since=24h",
        f"/logs/{i['xss_log']}",
        "/sessions",
        f"/sessions/{i['session']}",
        "/config",
        "/users",
        "/account/password",
    ]
    for path in pages:
        result = admin.get(path)
        assert result.status_code == 200, (path, result.text[:500])
        assert "<html" in result.text


def test_dashboard_has_svg_charts_and_feed(admin: Browser) -> None:
    page = admin.get("/").text
    assert page.count("<svg") >= 5
    for title in (
        "Requests",
        "Errors",
        "Latency",
        "Tokens",
        "Cost",
        "By model",
        "By key",
        "Live activity",
    ):
        assert title in page
    assert 'data-events="/events"' in page
    assert '<meta http-equiv="refresh" content="30">' in page  # inside <noscript>
    assert '<rect class="bar"' in page and "<polyline" in page
    assert "claude-opus-4-1" in page and "production" in page


def test_log_with_script_renders_as_text(admin: Browser, fake: FakeAdmin) -> None:
    page = admin.get(f"/logs/{ids(fake)['xss_log']}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;/pre&gt;&lt;script&gt;alert(3)" in page
    assert "Write fib.py" in page and 'class="diff-add"' in page
    assert "req_abc123" in page
    session = admin.get(f"/sessions/{ids(fake)['session']}").text
    assert "<script>alert" not in session and "&lt;script&gt;" in session
    assert "fib.py" in session


def test_unknown_things_are_404_pages(admin: Browser) -> None:
    for path in ("/nope", "/keys/key_missing", "/logs/log_missing", "/sessions/s_missing"):
        result = admin.get(path)
        assert result.status_code == 404, path
        assert "<html" in result.text and "Not found" in result.text


def test_logs_filters_and_paging(admin: Browser, fake: FakeAdmin) -> None:
    base = int(time.time() * 1000) - 5000
    for n in range(60):
        fake.add_log(
            time_ms=base - n,
            key_id="key_page",
            key_name="pager",
            endpoint="/v1/x",
            model="m-paging",
            status=200,
            latency_ms=10,
        )
    first = admin.get("/logs?model=m-paging")
    assert first.text.count("/logs/log_") == 50
    link = re.search(r'href="(/logs\?[^"]*page_token=[^"]+)" rel="next"', first.text)
    assert link
    second = admin.get(link.group(1).replace("&amp;", "&"))
    assert second.text.count("/logs/log_") == 10
    assert "First page" in second.text and 'rel="next"' not in second.text
    bad = admin.get("/logs?status=abc")
    assert "Enter an HTTP status" in bad.text
    none = admin.get("/logs?model=nothing-like-this")
    assert "No requests match these filters" in none.text


# Keys ----------------------------------------------------------------------------


def test_create_key_shows_secret_once(admin: Browser, fake: FakeAdmin) -> None:
    result = admin.post(
        "/keys",
        {
            "name": "build bot",
            "rpm": "30",
            "budget_usd": "12.5",
            "budget_period": "day",
            "allowed_tools": "Read, Grep",
            "allowed_models": "claude-sonnet-4-5",
            "expires": "2099-01-31",
        },
    )
    assert result.status_code == 201
    secret = re.search(r'<code id="secret" class="secret">([^<]+)</code>', result.text)
    assert secret and secret.group(1).startswith("sk-ccapi-")
    assert result.headers["cache-control"] == "no-store"
    key = next(k for k in fake.keys.values() if k.name == "build bot")
    assert key.limits.requests_per_minute == 30 and key.limits.budget_usd == 12.5
    assert key.limits.budget_period == admin_pb2.BUDGET_PERIOD_DAY
    assert list(key.allowed_tools) == ["Read", "Grep"]
    assert key.expires_at > time.time() + 86400 * 365
    listing = admin.get("/keys").text
    assert "build bot" in listing and secret.group(1) not in listing
    assert secret.group(1) not in admin.get(f"/keys/{key.id}").text


def test_create_key_validation(admin: Browser) -> None:
    result = admin.post("/keys", {"name": "", "rpm": "lots", "expires": "2001-01-01"})
    assert result.status_code == 400
    assert "Give the key a name" in result.text
    assert "Enter a whole number" in result.text
    assert "Choose a date in the future" in result.text
    core = admin.post("/keys", {"name": "x", "allowed_models": "no-such-model"})
    assert core.status_code == 400 and "Unknown model" in core.text


def test_edit_key_sends_only_changed_fields(admin: Browser, fake: FakeAdmin) -> None:
    key, _ = fake.add_key("editable", limits=admin_pb2.KeyLimits(requests_per_minute=5))
    form = {"name": "editable", "rpm": "9", "budget_period": "month"}
    fake.calls.clear()
    result = admin.post(f"/keys/{key.id}", form)
    assert result.status_code == 303
    assert fake.keys[key.id].limits.requests_per_minute == 9
    assert "Saved: limits." in admin.get(f"/keys/{key.id}").text
    again = admin.post(f"/keys/{key.id}", {**form, "name": "renamed", "allowed_tools": "Read"})
    assert again.status_code == 303
    assert fake.keys[key.id].name == "renamed"
    assert list(fake.keys[key.id].allowed_tools) == ["Read"]


def test_a_keys_builtin_default_is_set_shown_and_changed(admin: Browser, fake: FakeAdmin) -> None:
    made = admin.post("/keys", {"name": "agent host", "builtin_tools_default": "Read, Grep"})
    assert made.status_code == 201
    key = next(k for k in fake.keys.values() if k.name == "agent host")
    assert list(key.builtin_tools_default.names) == ["Read", "Grep"]
    assert "Read, Grep" in admin.get(f"/keys/{key.id}").text
    form = {"name": "agent host", "budget_period": "month", "builtin_tools_default": "all"}
    assert admin.post(f"/keys/{key.id}", form).status_code == 303
    assert fake.keys[key.id].builtin_tools_default.all
    assert "Saved: builtin tools default." in admin.get(f"/keys/{key.id}").text


def test_revoke_key(admin: Browser, fake: FakeAdmin) -> None:
    key, _ = fake.add_key("doomed")
    assert admin.post(f"/keys/{key.id}/revoke").status_code == 303
    assert fake.keys[key.id].revoked_at
    page = admin.get(f"/keys/{key.id}").text
    assert "is revoked" in page and "Revoke key" not in page


def test_viewer_is_read_only(viewer: Browser, fake: FakeAdmin) -> None:
    keys_page = viewer.get("/keys").text
    assert "Create key" not in keys_page and "read-only" in keys_page
    before = len(fake.keys)
    refused = viewer.post("/keys", {"name": "viewer-key"})
    assert refused.status_code == 403 and "Read-only access" in refused.text
    assert len(fake.keys) == before
    prod = ids(fake)["prod"]
    assert viewer.post(f"/keys/{prod}/revoke").status_code == 403
    assert viewer.post("/config", {"log_level": "debug"}).status_code == 403
    assert viewer.get("/users").status_code == 403
    assert viewer.post("/users", {"username": "x"}).status_code == 403
    assert "Users</a>" not in viewer.get("/").text
    assert '<fieldset class="form-grid" disabled>' in viewer.get("/config").text
    assert viewer.get(f"/keys/{prod}").status_code == 200


def test_core_refusal_is_a_403_page(app: Any, fake: FakeAdmin) -> None:
    # A viewer whose role the site has not refreshed yet: the core still refuses.
    fake.add_user("demoted", "demoted-password", "admin")
    b = Browser(falcon.testing.TestClient(app), remote_addr="10.4.4.4")
    b.login("demoted", "demoted-password")
    fake.users["demoted"].role = admin_pb2.USER_ROLE_VIEWER
    result = b.post("/keys", {"name": "late"})
    assert result.status_code == 403 and "Viewers may only read" in result.text


# Config --------------------------------------------------------------------------


def config_form(admin: Browser) -> dict[str, str]:
    page = admin.get("/config").text
    values = dict(re.findall(r'<input id="f-[^"]+" name="([^"]+)" value="([^"]*)"', page))
    values["model_aliases"] = re.search(
        r'name="model_aliases"[^>]*>([^<]*)</textarea>', page
    ).group(1)  # type: ignore[union-attr]
    values["log_level"] = re.search(r"<option selected>(\w+)</option>", page).group(1)  # type: ignore[union-attr]
    values["expected_version"] = re.search(r'name="expected_version" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    values.pop("csrf_token", None)
    if 'name="log_bodies" checked' in page:
        values["log_bodies"] = "on"
    return values


def test_config_inline_errors_and_history(admin: Browser, fake: FakeAdmin) -> None:
    form = config_form(admin)
    bad = admin.post("/config", {**form, "max_body_bytes": "10"})
    assert bad.status_code == 400
    assert re.search(r'id="e-max_body_bytes">max_body_bytes must be at least 1024', bad.text)
    local = admin.post("/config", {**form, "model_aliases": "no equals sign"})
    assert local.status_code == 400 and "Line 1: write it as alias = model" in local.text
    version = fake.version
    ok = admin.post(
        "/config",
        {
            **form,
            "pool_size": "5",
            "cors_origins": "https://a.example",
            "model_aliases": "gpt-4o = claude-sonnet-4-5\nfast = haiku",
        },
    )
    assert ok.status_code == 303
    assert fake.version == version + 1 and fake.config.pool_size == 5
    assert dict(fake.config.model_aliases)["fast"] == "haiku"
    assert set(fake.history[0].changed_fields) == {"pool_size", "cors_origins", "model_aliases"}
    page = admin.get("/config").text
    assert f"saved as version {version + 1}" in page
    assert "Process pool size" in page and "https://a.example" in page
    stale = admin.post("/config", {**form, "pool_size": "7"})
    assert stale.status_code == 409 and "Someone else changed" in stale.text


# Users ---------------------------------------------------------------------------


def test_users_admin(admin: Browser, fake: FakeAdmin) -> None:
    made = admin.post(
        "/users",
        {"username": "carol", "role": "viewer", "password": "carol-password", "must_change": "on"},
    )
    assert made.status_code == 303
    assert fake.users["carol"].must_change_password
    assert fake.users["carol"].role == admin_pb2.USER_ROLE_VIEWER
    dup = admin.post(
        "/users", {"username": "carol", "role": "viewer", "password": "carol-password"}
    )
    assert dup.status_code == 400 and "taken" in dup.text
    invalid = admin.post("/users", {"username": "bad name!", "role": "x", "password": "1"})
    assert invalid.status_code == 400 and "Choose a role" in invalid.text
    assert admin.post("/users/carol/role", {"role": "admin"}).status_code == 303
    assert fake.users["carol"].role == admin_pb2.USER_ROLE_ADMIN
    assert admin.post("/users/carol/disabled", {"disabled": "on"}).status_code == 303
    assert fake.users["carol"].disabled
    assert admin.post("/users/carol/disabled", {}).status_code == 303
    assert not fake.users["carol"].disabled
    assert admin.post("/users/admin/disabled", {"disabled": "on"}).status_code == 400
    fake.users["carol"].must_change_password = False
    assert admin.post("/users/carol/password", {"password": "temp-pass-123"}).status_code == 303
    assert fake.passwords["carol"] == "temp-pass-123"
    assert fake.users["carol"].must_change_password
    assert "Password of carol reset" in admin.get("/users").text


# Live events and failure pages ----------------------------------------------------


async def test_events_stream_relays_watch(app: Any, fake: FakeAdmin, admin: Browser) -> None:
    b = admin
    async with falcon.testing.ASGIConductor(app) as conductor:
        async with conductor.simulate_get_stream("/events", cookies=b.cookies) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            seen = b""
            deadline = time.monotonic() + 10
            while not fake.watchers and time.monotonic() < deadline:
                seen += await stream.stream.read()
                await asyncio.sleep(0.05)
            assert fake.watchers, "the site never started watching"
            fake.finish_request(
                key_id="key_live",
                key_name="<b>live</b>",
                endpoint="/v1/chat/completions",
                model="claude-sonnet-4-5",
                status=200,
                latency_ms=321,
                usage=events_pb2.Usage(input_tokens=3, output_tokens=4),
            )
            while b"event: request" not in seen and time.monotonic() < deadline:
                seen += await stream.stream.read()
                await asyncio.sleep(0.05)
    text = seen.decode()
    assert "event: request" in text
    assert '"key": "<b>live</b>"' in text  # JSON data; the page sets it as text only
    assert '"latency": "321 ms"' in text


def test_events_need_sign_in(browser: Browser) -> None:
    assert browser.get("/events").status_code == 303


def test_core_unreachable_page() -> None:
    app = create_app(make_config(f"127.0.0.1:{free_port()}", rpc_timeout_seconds=2))
    b = Browser(falcon.testing.TestClient(app))
    result = b.login("admin", "whatever-password")
    assert result.status_code == 503
    assert "unreachable" in result.text


@pytest.mark.parametrize("path", ["/static/app.js", "/static/app.css", "/static/favicon.svg"])
def test_static_files(browser: Browser, path: str) -> None:
    assert browser.get(path).status_code == 200


# Sign-ins end on the server (issue 10, item 7) ----------------------------------


def _copy(browser: Browser, remote_addr: str) -> Browser:
    """Another browser holding a copy of ``browser``'s cookie (a saved cookie)."""
    return Browser(browser.client, dict(browser.cookies), remote_addr, browser.csrf)


def test_sign_out_ends_every_copy_of_the_cookie(app: Any, fake: FakeAdmin) -> None:
    fake.add_user("leaving", "leaving-password-1", "admin")
    b = Browser(falcon.testing.TestClient(app), remote_addr="10.7.7.1")
    assert b.login("leaving", "leaving-password-1").status_code == 303
    saved = _copy(b, "10.7.7.2")
    assert saved.get("/keys").status_code == 200
    assert b.post("/logout").status_code == 303
    result = saved.get("/keys")
    assert result.status_code == 303 and result.headers["location"] == "/login"
    assert "sign-in has ended" in saved.get("/login").text
    # Signing in again works, and only the new sign-in does.
    assert b.login("leaving", "leaving-password-1").status_code == 303
    assert b.get("/keys").status_code == 200


def test_password_reset_and_change_end_other_sign_ins(
    app: Any, fake: FakeAdmin, admin: Browser
) -> None:
    fake.add_user("resetme", "resetme-password-1", "viewer")
    user = Browser(falcon.testing.TestClient(app), remote_addr="10.7.7.3")
    assert user.login("resetme", "resetme-password-1").status_code == 303
    assert user.get("/keys").status_code == 200
    assert admin.post("/users/resetme/password", {"password": "temporary-pw-1"}).status_code == 303
    assert user.get("/keys").headers["location"] == "/login"
    # Changing one's own password keeps this sign-in and ends the others.
    fake.users["resetme"].must_change_password = False
    here = Browser(falcon.testing.TestClient(app), remote_addr="10.7.7.4")
    assert here.login("resetme", "temporary-pw-1").status_code == 303
    there = Browser(falcon.testing.TestClient(app), remote_addr="10.7.7.5")
    assert there.login("resetme", "temporary-pw-1").status_code == 303
    changed = here.post("/account/password", {
        "current_password": "temporary-pw-1", "new_password": "my-own-password-1",
        "confirm_password": "my-own-password-1"})
    assert changed.status_code == 303 and changed.headers["location"] == "/"
    assert here.get("/keys").status_code == 200
    assert there.get("/keys").headers["location"] == "/login"


# Sign-in throttling (issue 10, item 6) -------------------------------------------


def test_lockout_is_per_address_and_account_and_an_admin_unlocks(
    app: Any, fake: FakeAdmin, admin: Browser
) -> None:
    fake.add_user("owner", "owner-password-1", "viewer")
    guesser = Browser(falcon.testing.TestClient(app), remote_addr="10.8.8.8")
    for _ in range(5):
        assert guesser.login("owner", "wrong-guess").status_code == 401
    assert guesser.login("owner", "owner-password-1").status_code == 429
    # The owner, elsewhere, is not locked out by someone else's guesses.
    owner = Browser(falcon.testing.TestClient(app), remote_addr="10.9.9.9")
    assert owner.login("owner", "owner-password-1").status_code == 303
    page = admin.get("/users").text
    assert "sign-in locked" in page and "10.8.8.8" in page
    assert admin.post("/users/owner/unlock").status_code == 303
    assert "may sign in again" in admin.get("/users").text
    assert guesser.login("owner", "owner-password-1").status_code == 303


def test_viewers_cannot_unlock(viewer: Browser) -> None:
    assert viewer.post("/users/admin/unlock").status_code == 403


# One redaction policy (issue 10, item 8) -----------------------------------------

SECRETS = ("sk-cc-abcdef0123456789", "AKIAIOSFODNN7EXAMPLE", "hunter2-secret")


def _add_secret_session(fake: FakeAdmin) -> tuple[str, str]:
    text = f"my key {SECRETS[0]}, aws {SECRETS[1]}, password={SECRETS[2]}"
    turn = agent_pb2.Turn(
        id="turn_secret", session_id="sess_secret", model="claude-sonnet-4-5",
        created_at=int(time.time()), output_text=f"Stored {SECRETS[0]} for you.",
        tool_uses=[events_pb2.ToolUse(id="tu9", name="Bash", summary=f"echo {SECRETS[1]}",
                                      input_json=f'{{"password": "{SECRETS[2]}"}}')],
    )
    turn.input.add(role=1).content.add(text=text)
    entry = fake.add_log(key_id="key_x", key_name="x", endpoint="/v1/chat/completions",
                         status=200, session_id="sess_secret", turn_id="turn_secret")
    fake.turns[entry.id] = turn
    fake.sessions.append(admin_pb2.AdminSession(
        key_id="key_x", session=sessions_pb2.Session(id="sess_secret", turn_count=1)))
    return "sess_secret", entry.id


def test_conversations_are_redacted_on_every_page_for_every_role(
    fake: FakeAdmin, viewer: Browser, admin: Browser
) -> None:
    session_id, log_id = _add_secret_session(fake)
    for who in (viewer, admin):
        for path in (f"/sessions/{session_id}", f"/logs/{log_id}"):
            page = who.get(path)
            assert page.status_code == 200, path
            for secret in SECRETS:
                assert secret not in page.text, (path, secret)
            assert "[REDACTED]" in page.text, path


# Wrong statuses (issue 10, item 9) -----------------------------------------------


@pytest.mark.parametrize("target", ["/。/x", "/keys/\u00e9", "/\u3002/evil.example"])
def test_non_ascii_next_is_dropped_not_a_500(browser: Browser, target: str) -> None:
    assert browser.get("/login", params={"next": target}).status_code == 200
    result = browser.post(
        "/login", {"username": "admin", "password": PASSWORDS["admin"], "next": target}
    )
    assert result.status_code == 303 and result.headers["location"] == "/"


# Dashboard (issue 10, item 14) ---------------------------------------------------


def test_latency_chart_shows_a_lone_bucket() -> None:
    lone = FakeAdmin().start()
    try:
        lone.add_user("admin", PASSWORDS["admin"], "admin")
        lone.add_log(key_id="k", key_name="k", endpoint="/v1/chat/completions", model="m",
                     status=200, latency_ms=1500,
                     usage=events_pb2.Usage(input_tokens=10, output_tokens=5))
        b = Browser(falcon.testing.TestClient(create_app(make_config(lone.addr))))
        assert b.login("admin").status_code == 303
        page = b.get("/").text
        latency = page[page.index('aria-label="Latency: '):]
        latency = latency[: latency.index("</figure>")]
        assert latency.count("<circle") == 2  # p50 and p95, one point each
        assert "No requests in this range" not in latency
    finally:
        lone.stop()


def test_behind_a_trusted_proxy_the_address_it_appended_counts(fake: FakeAdmin) -> None:
    proxied = create_app(make_config(fake.addr, trust_proxy=True))
    fake.add_user("proxied", "proxied-password-1", "viewer")
    b = Browser(falcon.testing.TestClient(proxied), remote_addr="127.0.0.1")

    def sign_in(password: str, forwarded_for: str) -> int:
        b.get("/login")
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Forwarded-For": forwarded_for}
        form = {"username": "proxied", "password": password}
        return b.post("/login", form, headers=headers).status_code

    for i in range(5):
        assert sign_in("wrong-guess", f"198.51.100.{i}, 192.0.2.7") == 401
    assert sign_in("proxied-password-1", "198.51.100.99, 192.0.2.7") == 429
    assert sign_in("proxied-password-1", "192.0.2.8") == 303
