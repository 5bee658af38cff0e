"""What every page shares: the site object, the base view, rendering and forms."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import falcon
import falcon.asgi
import jinja2

from admin_web.config import AdminConfig
from admin_web.sessions import CSRF_FIELD, Session, SessionCodec
from ccapi_client.admin import AdminClient
from ccapi_client.enums import ROLE_NAMES
from claudecode.v1 import admin_pb2

Request = falcon.asgi.Request
Response = falcon.asgi.Response


@dataclass
class Site:
    """Shared by every view: settings, the core client, templates, the cookie codec."""

    config: AdminConfig
    core: AdminClient
    templates: jinja2.Environment
    codec: SessionCodec


class View:
    """Base of every page resource.

    ``public`` pages need no sign-in; ``admin_only`` pages are refused to viewers
    even for reading; ``viewer_may_post`` marks the few POSTs a viewer may make
    (their own password, signing out); ``during_password_change`` marks what a user
    who must change their password may still reach.
    """

    public = False
    admin_only = False
    viewer_may_post = False
    during_password_change = False

    def __init__(self, site: Site) -> None:
        self.site = site

    @property
    def core(self) -> AdminClient:
        return self.site.core


def session_of(req: Request) -> Session:
    session: Session = req.context.session
    return session


def actor(req: Request) -> str:
    return session_of(req).username


def is_admin(req: Request) -> bool:
    return session_of(req).role == admin_pb2.USER_ROLE_ADMIN


def render(
    site: Site,
    req: Request,
    resp: Response,
    template: str,
    status: str | int = falcon.HTTP_200,
    **context: Any,
) -> None:
    session: Session | None = getattr(req.context, "session", None)
    base: dict[str, Any] = {
        "user": None,
        "csrf_field": CSRF_FIELD,
        "csrf_token": session.csrf if session else "",
        "flashes": session.pop_flashes() if session else [],
        "path": req.path,
        "now": time.time(),
        "is_admin": False,
        "page_title": "",
    }
    if session and session.signed_in:
        base["user"] = {
            "name": session.username,
            "role": ROLE_NAMES.get(session.role, "unknown"),
        }
        base["is_admin"] = session.role == admin_pb2.USER_ROLE_ADMIN
    base.update(context)
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.text = site.templates.get_template(template).render(base)


def see_other(location: str) -> falcon.HTTPSeeOther:
    return falcon.HTTPSeeOther(location)


def query_string(params: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "", 0)}
    return urlencode(kept)


@dataclass
class Form:
    """A submitted form with typed getters that collect errors by field name."""

    data: Mapping[str, Any]
    errors: dict[str, str] = field(default_factory=dict)

    def text(self, name: str, default: str = "") -> str:
        value = self.data.get(name, default)
        if isinstance(value, list):
            value = value[-1] if value else default
        return str(value).strip()

    def raw(self, name: str) -> str:
        """Unstripped (passwords)."""
        value = self.data.get(name, "")
        if isinstance(value, list):
            value = value[-1] if value else ""
        return str(value)

    def flag(self, name: str) -> bool:
        return self.text(name) in ("on", "1", "true", "yes")

    def integer(self, name: str, minimum: int = 0, maximum: int = 2**62) -> int:
        raw = self.text(name)
        if not raw:
            return 0
        try:
            value = int(raw)
        except ValueError:
            self.errors[name] = "Enter a whole number."
            return 0
        if value < minimum or value > maximum:
            self.errors[name] = f"Enter a number from {minimum} to {maximum}."
            return 0
        return value

    def number(self, name: str, minimum: float = 0.0) -> float:
        raw = self.text(name)
        if not raw:
            return 0.0
        try:
            value = float(raw)
        except ValueError:
            self.errors[name] = "Enter a number."
            return 0.0
        if value != value or value < minimum or value == float("inf"):
            self.errors[name] = f"Enter a number of at least {minimum:g}."
            return 0.0
        return value

    def items(self, name: str) -> list[str]:
        raw = self.text(name).replace("\n", ",")
        out: list[str] = []
        for item in raw.split(","):
            item = item.strip()
            if item and item not in out:
                out.append(item)
        return out


def form_of(req: Request) -> Form:
    data = getattr(req.context, "form", None)
    return Form(data if isinstance(data, Mapping) else {})
