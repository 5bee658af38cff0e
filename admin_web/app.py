"""The admin site's Falcon ASGI app: pages over the core's AdminService.

Cross-cutting work lives in :class:`SiteMiddleware` (session cookie, CSRF,
sign-in and role checks, security headers); failures become error pages in
:func:`register_error_handlers`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import falcon
import falcon.asgi
import grpc

from admin_web.config import AdminConfig
from admin_web.render import make_env
from admin_web.sessions import COOKIE_NAME, CSRF_FIELD, CSRF_HEADER, Session, SessionCodec
from admin_web.web import Request, Response, Site, View, render
from ccapi_client.admin import AdminClient, CoreError
from ccapi_client.telemetry import METRICS_PATH, MetricsExposure
from ccapi_client.web_metrics import MetricsMiddleware, MetricsResource, SiteMetrics

log = logging.getLogger("ccapi.admin")

STATIC = Path(__file__).parent / "static"

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def is_https(req: Request, config: AdminConfig) -> bool:
    if config.secure_cookies == "always":
        return True
    if config.secure_cookies == "never":
        return False
    forwarded = (req.get_header("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
    return req.scheme == "https" or forwarded == "https"


def client_address(req: Request, config: AdminConfig) -> str:
    """The address sign-in throttling counts: the peer, or behind the one trusted
    proxy the address that proxy appended to X-Forwarded-For (the entries before
    it are whatever the client sent)."""
    if config.trust_proxy:
        forwarded = [a.strip() for a in (req.get_header("X-Forwarded-For") or "").split(",")]
        if forwarded[-1]:
            return forwarded[-1][:100]
    return str(req.remote_addr or "")


class SiteMiddleware:
    """Session in, checks, headers and the re-signed cookie out."""

    def __init__(self, site: Site) -> None:
        self.site = site

    async def process_request(self, req: Request, resp: Response) -> None:
        codec = self.site.codec
        session = codec.loads((req.get_cookie_values(COOKIE_NAME) or [""])[0])
        req.context.session = session or Session()
        req.context.form = {}
        if req.method not in ("GET", "HEAD", "OPTIONS"):
            await self._check_post(req)

    async def _check_post(self, req: Request) -> None:
        origin = req.get_header("Origin")
        if origin and origin != "null":
            host = req.get_header("X-Forwarded-Host") if self.site.config.trust_proxy else None
            if urlsplit(origin).netloc != (host or req.get_header("Host") or req.netloc):
                raise falcon.HTTPForbidden(
                    title="Cross-site request refused",
                    description="This form was sent from another site.",
                )
        content_type = (req.content_type or "").split(";")[0].strip().lower()
        if content_type in FORM_TYPES:
            media = await req.get_media()
            req.context.form = media if isinstance(media, dict) else {}
        token = req.context.form.get(CSRF_FIELD) or req.get_header(CSRF_HEADER)
        if isinstance(token, list):
            token = token[-1] if token else ""
        session: Session = req.context.session
        if not session.csrf_ok(token if isinstance(token, str) else None):
            raise falcon.HTTPForbidden(
                title="Form expired",
                description=(
                    "The form was missing its security token or it no longer matches your "
                    "session. Go back, reload the page and try again."
                ),
            )

    async def process_resource(
        self, req: Request, resp: Response, resource: Any, params: dict[str, Any]
    ) -> None:
        if not isinstance(resource, View) or resource.public:
            return
        session: Session = req.context.session
        if not session.signed_in:
            if req.method in ("GET", "HEAD"):
                target = req.relative_uri if req.path != "/" else ""
                suffix = f"?next={quote(target, safe='')}" if target else ""
                raise falcon.HTTPSeeOther("/login" + suffix)
            raise falcon.HTTPUnauthorized(
                title="Signed out", description="Sign in again to continue."
            )
        await self._check_sign_in(req, session)
        if session.must_change_password and not resource.during_password_change:
            raise falcon.HTTPSeeOther("/account/password")
        from claudecode.v1 import admin_pb2

        admin = session.role == admin_pb2.USER_ROLE_ADMIN
        if resource.admin_only and not admin:
            raise falcon.HTTPForbidden(
                title="Admins only", description="Only admins can see this page."
            )
        if req.method == "POST" and not admin and not resource.viewer_may_post:
            raise falcon.HTTPForbidden(
                title="Read-only access",
                description="Your role is viewer: you can look at everything but change nothing.",
            )

    async def _check_sign_in(self, req: Request, session: Session) -> None:
        """Ends, on every request, a sign-in the core has ended (signed out
        elsewhere, password reset, user disabled); picks up role changes once
        the cached role is older than ``role_refresh_seconds`` (the core checks
        the role on every call anyway)."""
        try:
            user = await self.site.core.check_sign_in(session.username, session.token)
        except CoreError as error:
            if error.code not in (grpc.StatusCode.UNAUTHENTICATED,
                                  grpc.StatusCode.PERMISSION_DENIED):
                log.warning("could not check the sign-in of %s: %s", session.username, error)
                return
            session.sign_out()
            session.ended = False
            session.flash("error", "Your sign-in has ended, or your account is no longer "
                                   "active. Sign in again.")
            raise falcon.HTTPSeeOther("/login") from None
        now = int(time.time())
        if now - session.checked_at >= self.site.config.role_refresh_seconds:
            session.role = user.role
            session.must_change_password = user.must_change_password
            session.checked_at = now

    async def process_response(
        self, req: Request, resp: Response, resource: Any, req_succeeded: bool
    ) -> None:
        for name, value in SECURITY_HEADERS.items():
            resp.set_header(name, value)
        https = is_https(req, self.site.config)
        if https:
            resp.set_header("Strict-Transport-Security", "max-age=31536000")
        if not req.path.startswith("/static/"):
            resp.set_header("Cache-Control", "no-store")
        session: Session | None = getattr(req.context, "session", None)
        if session is None:
            return
        if session.ended:
            resp.unset_cookie(COOKIE_NAME, path="/")
            return
        resp.set_cookie(
            COOKIE_NAME,
            self.site.codec.dumps(session),
            max_age=self.site.config.idle_timeout_seconds,
            path="/",
            secure=https,
            http_only=True,
            same_site="Lax",
        )


CORE_ERROR_PAGES: dict[grpc.StatusCode, tuple[str, str]] = {
    grpc.StatusCode.NOT_FOUND: (falcon.HTTP_404, "Not found"),
    grpc.StatusCode.PERMISSION_DENIED: (falcon.HTTP_403, "Not allowed"),
    grpc.StatusCode.UNAUTHENTICATED: (falcon.HTTP_403, "Not allowed"),
    grpc.StatusCode.INVALID_ARGUMENT: (falcon.HTTP_400, "Invalid request"),
    grpc.StatusCode.FAILED_PRECONDITION: (falcon.HTTP_409, "Conflict"),
    grpc.StatusCode.ABORTED: (falcon.HTTP_409, "Conflict"),
    grpc.StatusCode.ALREADY_EXISTS: (falcon.HTTP_409, "Already exists"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (falcon.HTTP_429, "Too many requests"),
    grpc.StatusCode.UNAVAILABLE: (falcon.HTTP_503, "The core is unreachable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (falcon.HTTP_504, "The core did not answer in time"),
}

UNREACHABLE_TEXT = (
    "The admin site could not reach the core service. It may be starting or "
    "stopped; try again in a moment."
)


def register_error_handlers(app: falcon.asgi.App[Any, Any], site: Site) -> None:
    async def core_error(req: Request, resp: Response, error: CoreError, params: Any) -> None:
        status, title = CORE_ERROR_PAGES.get(error.code, (falcon.HTTP_502, "Core error"))
        if error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            description = UNREACHABLE_TEXT
        else:
            # The core's messages are written to be shown; they are escaped like all text.
            description = error.message
        log.warning("core call failed on %s %s: %s", req.method, req.path, error)
        render(site, req, resp, "error.html", status=status, title=title,
               description=description, page_title=title)

    async def http_error(
        req: Request, resp: Response, error: falcon.HTTPError, params: Any
    ) -> None:
        if req.path == "/events" or req.path.startswith("/static/"):
            resp.status = error.status
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = error.title or ""
            return
        headers = error.headers or {}
        for name, value in headers.items() if isinstance(headers, Mapping) else headers:
            resp.set_header(name, value)
        title, description = error.title or "Error", error.description or ""
        if isinstance(error, falcon.HTTPNotFound | falcon.HTTPRouteNotFound):
            title, description = "Not found", description or "There is nothing at this address."
        elif isinstance(error, falcon.HTTPMethodNotAllowed):
            title, description = "Not allowed", "This address does not accept that request."
        render(site, req, resp, "error.html", status=error.status, title=title,
               description=description, page_title=title)

    async def unexpected(req: Request, resp: Response, error: Exception, params: Any) -> None:
        if isinstance(error, falcon.HTTPStatus):
            raise error
        log.exception("unexpected error on %s %s", req.method, req.path)
        render(site, req, resp, "error.html", status=falcon.HTTP_500,
               title="Something went wrong",
               description="The page failed. The error was logged; try again.",
               page_title="Error")

    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(falcon.HTTPError, http_error)
    app.add_error_handler(CoreError, core_error)


class AdminApp(falcon.asgi.App[Any, Any]):
    """The Falcon app, holding the site's shared objects."""

    site: Site


def create_app(
    config: AdminConfig | None = None,
    core: AdminClient | None = None,
    exposure: MetricsExposure | None = None,
) -> AdminApp:
    """Builds the app; the core channel opens on the first request."""
    from admin_web.views import routes

    config = config or AdminConfig.from_env()
    core = core or AdminClient(config.core_addr, config.admin_token, config.rpc_timeout_seconds)
    site = Site(config, core, make_env(), SessionCodec(config.secret_key,
                                                        config.idle_timeout_seconds))
    metrics = SiteMetrics("ccapi_admin", with_model=False)
    app = AdminApp(middleware=[MetricsMiddleware(metrics), SiteMiddleware(site)])
    app.req_options.strip_url_path_trailing_slash = True
    app.add_static_route("/static", str(STATIC))
    # Not a View: no sign-in; who may read it is the exposure setting's call.
    app.add_route(METRICS_PATH, MetricsResource(metrics, exposure or MetricsExposure.from_env()))
    for path, resource, suffix in routes(site):
        if suffix:
            app.add_route(path, resource, suffix=suffix)
        else:
            app.add_route(path, resource)
    register_error_handlers(app, site)
    app.site = site
    return app
