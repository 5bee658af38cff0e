"""API keys: list with usage, create (secret shown once), edit, revoke."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import falcon
import grpc

from admin_web.app_helpers import core_field_errors
from admin_web.web import Form, Request, Response, View, actor, form_of, render, session_of
from ccapi_client.admin import CoreError
from ccapi_client.enums import PERIOD_BY_NAME, PERIOD_NAMES
from claudecode.v1 import admin_pb2, content_pb2

PERIOD_LABELS = {"day": "per day", "month": "per month", "total": "in total"}
PERIODS = [(name, PERIOD_LABELS[name], value) for name, value in PERIOD_BY_NAME.items()]
KEY_FIELDS = {"name", "rpm", "tpm", "max_concurrent", "budget_usd", "budget_period",
              "allowed_models", "allowed_tools", "builtin_tools_default", "expires"}
PARAM_ALIASES = {
    "requests_per_minute": "rpm",
    "tokens_per_minute": "tpm",
    "expires_at": "expires",
    "limits": "rpm",
}


@dataclass
class KeyForm:
    """The values of the create/edit form, as strings for redisplay."""

    name: str = ""
    rpm: str = ""
    tpm: str = ""
    max_concurrent: str = ""
    budget_usd: str = ""
    budget_period: str = "month"
    allowed_models: str = ""
    allowed_tools: str = ""
    builtin_tools_default: str = "none"
    expires: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_key(cls, key: admin_pb2.ApiKey) -> KeyForm:
        def num(v: float) -> str:
            return "" if not v else (f"{v:g}" if isinstance(v, float) else str(v))

        expires = ""
        if key.expires_at:
            expires = dt.datetime.fromtimestamp(key.expires_at, tz=dt.UTC).strftime("%Y-%m-%d")
        return cls(
            name=key.name,
            rpm=num(key.limits.requests_per_minute),
            tpm=num(key.limits.tokens_per_minute),
            max_concurrent=num(key.limits.max_concurrent),
            budget_usd=num(key.limits.budget_usd),
            budget_period=PERIOD_NAMES.get(key.limits.budget_period, "month"),
            allowed_models=", ".join(key.allowed_models),
            allowed_tools=", ".join(key.allowed_tools),
            builtin_tools_default=builtin_text(key.builtin_tools_default),
            expires=expires,
        )

    @classmethod
    def of_form(cls, form: Form) -> KeyForm:
        return cls(**{name: form.text(name) for name in KEY_FIELDS}, errors=form.errors)


def builtin_text(value: content_pb2.BuiltinTools) -> str:
    """"all", "none" or the names, as the form shows them."""
    if value.all:
        return "all"
    return ", ".join(value.names) or "none"


def parse_builtin(form: Form) -> content_pb2.BuiltinTools:
    raw = form.text("builtin_tools_default").strip()
    if raw.lower() == "all":
        return content_pb2.BuiltinTools(all=True)
    if raw.lower() in ("", "none"):
        return content_pb2.BuiltinTools()
    return content_pb2.BuiltinTools(names=form.items("builtin_tools_default"))


def parse_expiry(form: Form, now: float) -> int:
    raw = form.text("expires")
    if not raw:
        return 0
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        form.errors["expires"] = "Enter a date as YYYY-MM-DD."
        return 0
    end = dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=dt.UTC).timestamp()
    if end <= now:
        form.errors["expires"] = "Choose a date in the future."
        return 0
    return int(end)


def key_values(form: Form, now: float) -> dict[str, Any]:
    """The key's fields from the form; problems are recorded in ``form.errors``."""
    name = form.text("name")
    if not name:
        form.errors["name"] = "Give the key a name."
    elif len(name) > 100:
        form.errors["name"] = "Use at most 100 characters."
    period = PERIOD_BY_NAME.get(form.text("budget_period") or "month")
    if period is None:
        form.errors["budget_period"] = "Choose a period."
        period = admin_pb2.BUDGET_PERIOD_MONTH
    limits = admin_pb2.KeyLimits(
        requests_per_minute=form.integer("rpm", 0, 2**31 - 1),
        tokens_per_minute=form.integer("tpm"),
        max_concurrent=form.integer("max_concurrent", 0, 2**31 - 1),
        budget_usd=form.number("budget_usd"),
        budget_period=period,
    )
    return {
        "name": name,
        "limits": limits,
        "allowed_models": form.items("allowed_models"),
        "allowed_tools": form.items("allowed_tools"),
        "builtin_tools_default": parse_builtin(form),
        "expires_at": parse_expiry(form, now),
    }


class Keys(View):
    async def on_get(self, req: Request, resp: Response) -> None:
        await self.page(req, resp, KeyForm(), falcon.HTTP_200)

    async def page(self, req: Request, resp: Response, form: KeyForm, status: str) -> None:
        include_revoked = req.get_param_as_bool("revoked") or False
        token = req.get_param("page_token") or ""
        reply = await self.core.list_keys(actor(req), page_size=50, page_token=token,
                                          include_revoked=include_revoked)
        render(self.site, req, resp, "keys.html", status=status, page_title="API keys",
               keys=reply.keys, next_page_token=reply.next_page_token, page_token=token,
               include_revoked=include_revoked, form=form, periods=PERIODS)

    async def on_post(self, req: Request, resp: Response) -> None:
        import time

        form = form_of(req)
        values = key_values(form, time.time())
        if form.errors:
            await self.page(req, resp, KeyForm.of_form(form), falcon.HTTP_400)
            return
        try:
            reply = await self.core.create_key(actor(req), **values)
        except CoreError as error:
            if error.code != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            form.errors.update(core_field_errors(error, "name", PARAM_ALIASES, KEY_FIELDS))
            await self.page(req, resp, KeyForm.of_form(form), falcon.HTTP_400)
            return
        # The secret is in this response only: never in a redirect, a cookie or a log.
        render(self.site, req, resp, "key_created.html", status=falcon.HTTP_201,
               page_title="Key created", key=reply.key, secret=reply.secret)


class Key(View):
    async def on_get(self, req: Request, resp: Response, key_id: str) -> None:
        key = await self.core.get_key(actor(req), key_id)
        await self.page(req, resp, key, KeyForm.of_key(key), falcon.HTTP_200)

    async def page(self, req: Request, resp: Response, key: admin_pb2.ApiKey, form: KeyForm,
                   status: str) -> None:
        logs = await self.core.list_request_logs(
            actor(req), admin_pb2.ListRequestLogsRequest(key_id=key.id, page_size=10))
        render(self.site, req, resp, "key.html", status=status, page_title=key.name or key.id,
               key=key, form=form, periods=PERIODS, logs=logs.logs)

    async def on_post(self, req: Request, resp: Response, key_id: str) -> None:
        import time

        current = await self.core.get_key(actor(req), key_id)
        form = form_of(req)
        values = key_values(form, time.time())
        if form.errors and set(form.errors) == {"expires"} and form.text("expires") == \
                KeyForm.of_key(current).expires:
            # An unchanged expiry that has passed meanwhile is not an error.
            form.errors.clear()
            values["expires_at"] = current.expires_at
        if form.errors:
            await self.page(req, resp, current, KeyForm.of_form(form), falcon.HTTP_400)
            return
        changed = [name for name, value in values.items()
                   if _differs(getattr(current, name), value)]
        if not changed:
            session_of(req).flash("info", "Nothing changed.")
            raise falcon.HTTPSeeOther(f"/keys/{key_id}")
        update = admin_pb2.ApiKey(id=key_id, **values)
        try:
            await self.core.update_key(actor(req), update, changed)
        except CoreError as error:
            if error.code != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            form.errors.update(core_field_errors(error, "name", PARAM_ALIASES, KEY_FIELDS))
            await self.page(req, resp, current, KeyForm.of_form(form), falcon.HTTP_400)
            return
        session_of(req).flash("success", "Saved: " + ", ".join(c.replace("_", " ")
                                                                 for c in changed) + ".")
        raise falcon.HTTPSeeOther(f"/keys/{key_id}")


def _differs(old: Any, new: Any) -> bool:
    if isinstance(new, list):
        return list(old) != new
    return bool(old != new)


class KeyRevoke(View):
    async def on_post(self, req: Request, resp: Response, key_id: str) -> None:
        key = await self.core.revoke_key(actor(req), key_id)
        session_of(req).flash("success", f"Key “{key.name}” is revoked; it stopped "
                                         "working at once.")
        raise falcon.HTTPSeeOther(f"/keys/{key_id}")
