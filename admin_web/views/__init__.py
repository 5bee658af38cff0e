"""The site's pages, one module per area; :func:`routes` wires them to paths."""

from __future__ import annotations

from typing import Any

from admin_web.views.auth import Login, Logout, Password
from admin_web.views.config import Config
from admin_web.views.dashboard import Dashboard, Events
from admin_web.views.keys import Key, KeyRevoke, Keys
from admin_web.views.logs import LogEntry, Logs
from admin_web.views.sessions import SessionDetail, Sessions
from admin_web.views.users import UserDisable, UserPassword, UserRole, Users, UserUnlock
from admin_web.web import Site


def routes(site: Site) -> list[tuple[str, Any, str]]:
    return [
        ("/login", Login(site), ""),
        ("/logout", Logout(site), ""),
        ("/account/password", Password(site), ""),
        ("/", Dashboard(site), ""),
        ("/events", Events(site), ""),
        ("/keys", Keys(site), ""),
        ("/keys/{key_id}", Key(site), ""),
        ("/keys/{key_id}/revoke", KeyRevoke(site), ""),
        ("/logs", Logs(site), ""),
        ("/logs/{log_id}", LogEntry(site), ""),
        ("/sessions", Sessions(site), ""),
        ("/sessions/{session_id}", SessionDetail(site), ""),
        ("/config", Config(site), ""),
        ("/users", Users(site), ""),
        ("/users/{username}/role", UserRole(site), ""),
        ("/users/{username}/disabled", UserDisable(site), ""),
        ("/users/{username}/password", UserPassword(site), ""),
        ("/users/{username}/unlock", UserUnlock(site), ""),
    ]
