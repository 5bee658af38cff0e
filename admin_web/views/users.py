"""Admin-site users (admins only): create, change role, disable, reset password."""

from __future__ import annotations

import secrets

import falcon
import grpc

from admin_web.app_helpers import core_field_errors
from admin_web.web import Request, Response, View, actor, form_of, render, session_of
from ccapi_client.admin import CoreError
from ccapi_client.enums import ROLE_BY_NAME
from claudecode.v1 import admin_pb2

ROLES = [("viewer", ROLE_BY_NAME["viewer"]), ("admin", ROLE_BY_NAME["admin"])]
MIN_PASSWORD = 8


def _check_username(name: str) -> str:
    if not name:
        return "Enter a username."
    if len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        return "Use up to 64 letters, digits and . _ - @."
    return ""


class Users(View):
    admin_only = True

    async def on_get(self, req: Request, resp: Response) -> None:
        await self.page(req, resp, {}, {"role": "viewer", "must_change": "on"},
                        falcon.HTTP_200)

    async def page(self, req: Request, resp: Response, errors: dict[str, str],
                   values: dict[str, str], status: str) -> None:
        reply = await self.core.list_users(actor(req))
        locks = await self.core.list_sign_in_locks(actor(req))
        locked = {lock.username for lock in locks if lock.username}
        render(self.site, req, resp, "users.html", status=status, page_title="Users",
               users=reply.users, errors=errors, values=values, roles=ROLES,
               me=actor(req), suggestion=secrets.token_urlsafe(12), locks=locks,
               locked=locked)

    async def on_post(self, req: Request, resp: Response) -> None:
        form = form_of(req)
        values = {"username": form.text("username"), "role": form.text("role"),
                  "must_change": "on" if form.flag("must_change") else ""}
        errors: dict[str, str] = {}
        if message := _check_username(values["username"]):
            errors["username"] = message
        role = ROLE_BY_NAME.get(values["role"])
        if role is None:
            errors["role"] = "Choose a role."
        password = form.raw("password")
        if len(password) < MIN_PASSWORD:
            errors["password"] = f"Use at least {MIN_PASSWORD} characters."
        if not errors and role is not None:
            try:
                await self.core.create_user(actor(req), values["username"], role, password,
                                            form.flag("must_change"))
            except CoreError as error:
                if error.code == grpc.StatusCode.ALREADY_EXISTS:
                    errors["username"] = "That username is taken."
                elif error.code == grpc.StatusCode.INVALID_ARGUMENT:
                    errors.update(core_field_errors(error, "username", None,
                                                    {"username", "password", "role"}))
                else:
                    raise
            else:
                session_of(req).flash("success", f"User {values['username']} created.")
                raise falcon.HTTPSeeOther("/users")
        await self.page(req, resp, errors, values, falcon.HTTP_400)


class UserRole(View):
    admin_only = True

    async def on_post(self, req: Request, resp: Response, username: str) -> None:
        role = ROLE_BY_NAME.get(form_of(req).text("role"))
        if role is None:
            raise falcon.HTTPBadRequest(title="Unknown role", description="Choose a role.")
        await self.core.update_user(actor(req), admin_pb2.User(username=username, role=role),
                                    ["role"])
        session_of(req).flash("success", f"{username} is now {form_of(req).text('role')}.")
        raise falcon.HTTPSeeOther("/users")


class UserDisable(View):
    admin_only = True

    async def on_post(self, req: Request, resp: Response, username: str) -> None:
        disable = form_of(req).flag("disabled")
        if disable and username == actor(req):
            raise falcon.HTTPBadRequest(title="Not possible",
                                        description="You cannot disable yourself.")
        await self.core.update_user(actor(req),
                                    admin_pb2.User(username=username, disabled=disable),
                                    ["disabled"])
        state = "disabled" if disable else "enabled again"
        session_of(req).flash("success", f"{username} is {state}.")
        raise falcon.HTTPSeeOther("/users")


class UserUnlock(View):
    """Lifts the sign-in locks of a user (after failed sign-ins, from any address)."""

    admin_only = True

    async def on_post(self, req: Request, resp: Response, username: str) -> None:
        await self.core.unlock_user(actor(req), username)
        session_of(req).flash("success", f"{username} may sign in again from every address.")
        raise falcon.HTTPSeeOther("/users")


class UserPassword(View):
    admin_only = True

    async def on_post(self, req: Request, resp: Response, username: str) -> None:
        password = form_of(req).raw("password")
        if len(password) < MIN_PASSWORD:
            session_of(req).flash("error", f"The new password for {username} needs at least "
                                           f"{MIN_PASSWORD} characters.")
            raise falcon.HTTPSeeOther("/users")
        await self.core.set_user_password(actor(req), username, password,
                                          must_change_password=True)
        session_of(req).flash("success", f"Password of {username} reset; their sign-ins have "
                                         "ended and they must change it at the next one.")
        raise falcon.HTTPSeeOther("/users")
