"""Fixtures of the admin site's tests: the app against an in-process fake AdminService."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import falcon.testing
import pytest

from admin_web.app import create_app
from admin_web.config import AdminConfig
from tests.admin.fake_admin import ADMIN_TOKEN, FakeAdmin, seed

PASSWORDS = {
    "admin": "admin-password-1",
    "viewer": "viewer-password-1",
    "newbie": "first-password-1",
}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeAdmin]:
    admin = FakeAdmin().start()
    admin.add_user("admin", PASSWORDS["admin"], "admin")
    admin.add_user("viewer", PASSWORDS["viewer"], "viewer")
    admin.ids = seed(admin)  # type: ignore[attr-defined]
    yield admin
    admin.stop()


def make_config(addr: str, **kw: Any) -> AdminConfig:
    base: dict[str, Any] = {
        "core_addr": addr,
        "admin_token": ADMIN_TOKEN,
        "secret_key": "test-secret",
        "keepalive_seconds": 0.2,
    }
    base.update(kw)
    return AdminConfig(**base)


@pytest.fixture(scope="session")
def app(fake: FakeAdmin) -> Any:
    return create_app(make_config(fake.addr))


@dataclass
class Browser:
    """falcon's TestClient with a cookie jar and CSRF-aware form posts."""

    client: falcon.testing.TestClient
    cookies: dict[str, str] = field(default_factory=dict)
    remote_addr: str = "127.0.0.1"
    csrf: str = ""

    def _keep(self, result: falcon.testing.Result) -> falcon.testing.Result:
        for name, cookie in result.cookies.items():
            if cookie.max_age == 0 or cookie.value == "":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie.value
        found = CSRF_RE.search(result.text or "")
        if found:
            self.csrf = found.group(1)
        return result

    def get(self, path: str, **kw: Any) -> falcon.testing.Result:
        return self._keep(
            self.client.simulate_get(path, cookies=self.cookies, remote_addr=self.remote_addr, **kw)
        )

    def post(
        self, path: str, data: dict[str, str] | None = None, csrf: bool = True, **kw: Any
    ) -> falcon.testing.Result:
        form = dict(data or {})
        if csrf:
            if not self.csrf:
                self.get("/login")
            form.setdefault("csrf_token", self.csrf)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **kw.pop("headers", {})}
        return self._keep(
            self.client.simulate_post(
                path,
                cookies=self.cookies,
                remote_addr=self.remote_addr,
                headers=headers,
                body=falcon.to_query_str(form, prefix=False),
                **kw,
            )
        )

    def login(self, username: str, password: str | None = None) -> falcon.testing.Result:
        self.get("/login")
        result = self.post(
            "/login", {"username": username, "password": password or PASSWORDS[username]}
        )
        if result.status_code == 303:
            self.get(result.headers["location"])  # picks up the rotated CSRF token
        return result


@pytest.fixture
def browser(app: Any) -> Browser:
    return Browser(falcon.testing.TestClient(app))


@pytest.fixture
def admin(browser: Browser) -> Browser:
    assert browser.login("admin").status_code == 303
    return browser


@pytest.fixture
def viewer(app: Any) -> Browser:
    b = Browser(falcon.testing.TestClient(app), remote_addr="127.0.0.2")
    assert b.login("viewer").status_code == 303
    return b
