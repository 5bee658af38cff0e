"""Signing in and out, and changing one's own password."""

from __future__ import annotations

import logging
import time

import falcon
import grpc

from admin_web.app_helpers import core_field_errors, safe_next
from admin_web.sessions import Session
from admin_web.web import Request, Response, View, actor, form_of, render, session_of
from ccapi_client.admin import CoreError

log = logging.getLogger("ccapi.admin")

MIN_PASSWORD = 8


def wait_text(seconds: int) -> str:
    if seconds <= 0:
        return "Wait a while before trying again."
    if seconds < 90:
        return f"Try again in {seconds} seconds."
    return f"Try again in {round(seconds / 60)} minutes."


class Login(View):
    public = True

    async def on_get(self, req: Request, resp: Response) -> None:
        if session_of(req).signed_in:
            raise falcon.HTTPSeeOther("/")
        render(self.site, req, resp, "login.html", page_title="Sign in", error="",
               username="", next=safe_next(req.get_param("next")))

    async def on_post(self, req: Request, resp: Response) -> None:
        from admin_web.app import client_address

        form = form_of(req)
        username = form.text("username")
        password = form.raw("password")
        target = safe_next(form.text("next"))
        error = ""
        status = falcon.HTTP_401
        if not username or not password:
            error, status = "Enter your username and password.", falcon.HTTP_400
        else:
            try:
                reply = await self.core.authenticate(
                    username, password, client_address(req, self.site.config)
                )
            except CoreError as failure:
                if failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    error = "Too many failed sign-ins. " + wait_text(failure.retry_after_seconds)
                    status = falcon.HTTP_429
                    if failure.retry_after_seconds:
                        resp.set_header("Retry-After", str(failure.retry_after_seconds))
                elif failure.code in (grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.DEADLINE_EXCEEDED):
                    error = "The service is unreachable right now. Try again in a moment."
                    status = falcon.HTTP_503
                elif failure.reason == "invalid_admin_token":
                    log.error("the core refused the admin token: check CCAPI_ADMIN_TOKEN")
                    error = ("The admin site is not configured to talk to the core "
                             "(wrong CCAPI_ADMIN_TOKEN). Ask the operator.")
                    status = falcon.HTTP_503
                else:
                    log.info("sign-in refused for %r: %s", username, failure)
                    error = "Wrong username or password."
            else:
                user = reply.user
                token = await self.core.start_sign_in(user.username)
                session = session_of(req)
                session.sign_in(user.username, user.role, user.must_change_password,
                                int(time.time()), token)
                if user.must_change_password:
                    session.flash("info", "Choose a new password before you continue.")
                    raise falcon.HTTPSeeOther("/account/password")
                raise falcon.HTTPSeeOther(target or "/")
        render(self.site, req, resp, "login.html", status=status, page_title="Sign in",
               error=error, username=username, next=target)


class Logout(View):
    viewer_may_post = True
    during_password_change = True

    async def on_get(self, req: Request, resp: Response) -> None:
        render(self.site, req, resp, "logout.html", page_title="Sign out")

    async def on_post(self, req: Request, resp: Response) -> None:
        # Ends this sign-in and every other one of this user in the core, so
        # that a copy of the cookie (another browser, a saved file) stops working.
        try:
            await self.core.end_sign_ins(actor(req), actor(req))
        except CoreError as failure:
            log.warning("could not end the sign-ins of %s: %s", actor(req), failure)
        fresh = Session()
        fresh.flash("info", "You are signed out.")
        req.context.session = fresh
        raise falcon.HTTPSeeOther("/login")


class Password(View):
    viewer_may_post = True
    during_password_change = True

    async def on_get(self, req: Request, resp: Response) -> None:
        render(self.site, req, resp, "password.html", page_title="Change password",
               errors={}, forced=session_of(req).must_change_password)

    async def on_post(self, req: Request, resp: Response) -> None:
        form = form_of(req)
        current = form.raw("current_password")
        new = form.raw("new_password")
        confirm = form.raw("confirm_password")
        errors: dict[str, str] = {}
        if not current:
            errors["current_password"] = "Enter your current password."
        if len(new) < MIN_PASSWORD:
            errors["new_password"] = f"Use at least {MIN_PASSWORD} characters."
        elif new == current:
            errors["new_password"] = "Choose a password different from the current one."
        if new != confirm:
            errors["confirm_password"] = "The two new passwords differ."
        if not errors:
            try:
                await self.core.set_user_password(actor(req), actor(req), new,
                                                  current_password=current)
            except CoreError as failure:
                if failure.code in (grpc.StatusCode.UNAUTHENTICATED,
                                    grpc.StatusCode.PERMISSION_DENIED):
                    errors["current_password"] = "The current password is wrong."
                elif failure.code == grpc.StatusCode.INVALID_ARGUMENT:
                    errors.update(core_field_errors(failure, "new_password",
                                                    {"password": "new_password"}))
                else:
                    raise
            else:
                session = session_of(req)
                # The new password ended every sign-in; this one carries on.
                session.token = await self.core.start_sign_in(actor(req))
                session.must_change_password = False
                session.flash("success", "Your password was changed; your other sign-ins "
                                         "have ended.")
                raise falcon.HTTPSeeOther("/")
        render(self.site, req, resp, "password.html", status=falcon.HTTP_400,
               page_title="Change password", errors=errors,
               forced=session_of(req).must_change_password)
