"""Live configuration: edit with inline validation errors, and the change history."""

from __future__ import annotations

from dataclasses import dataclass

import falcon
import grpc

from admin_web.app_helpers import param_field
from admin_web.web import Form, Request, Response, View, actor, form_of, render, session_of
from ccapi_client.admin import CoreError
from claudecode.v1 import admin_pb2


@dataclass(frozen=True)
class Setting:
    name: str
    label: str
    kind: str  # "aliases", "list", "int", "bool", "choice"
    help: str
    choices: tuple[str, ...] = ()


SETTINGS = [
    Setting("model_aliases", "Model aliases", "aliases",
            "One per line: alias = model, e.g. gpt-4o = claude-sonnet-5-5."),
    Setting("default_allowed_tools", "Default allowed tools", "list",
            "Tools a key without its own list may use, comma-separated. Empty: all but "
            "those denied by default."),
    Setting("log_level", "Log level", "choice", "How much the services log.",
            ("debug", "info", "warning", "error")),
    Setting("cors_origins", "CORS origins", "list",
            "Origins the HTTP API allows, comma-separated. Empty: none."),
    Setting("max_body_bytes", "Max request body (bytes)", "int",
            "Largest request body the HTTP API accepts."),
    Setting("log_retention_days", "Log retention (days)", "int",
            "Request logs older than this are deleted."),
    Setting("workspace_retention_days", "Workspace retention (days)", "int",
            "An idle session's workspace is kept this long."),
    Setting("max_file_bytes", "Max uploaded file (bytes)", "int",
            "Largest file a key may upload through /v1/files."),
    Setting("file_retention_days", "File retention (days)", "int",
            "Uploaded files are deleted this long after upload (a client's shorter "
            "expires_after wins)."),
    Setting("pool_size", "Process pool size", "int", "Pre-started Claude Code processes."),
    Setting("claude_max_retries", "Claude Code retry cap", "int",
            "Retries of model calls inside Claude Code."),
    Setting("max_live_processes", "Max live Claude Code processes", "int",
            "Idle ones are ended least recently used first when a start needs room."),
    Setting("max_running_turns", "Max running turns", "int",
            "Turns running at once; more wait in the queue."),
    Setting("max_queued_turns", "Max queued turns", "int",
            "Turns that may wait for a running slot; 0: none wait (503 at once)."),
    Setting("max_queue_wait_seconds", "Max queue wait (seconds)", "int",
            "A turn waiting longer is refused with 503 and Retry-After."),
    Setting("max_concurrent_starts", "Max concurrent starts", "int",
            "Claude Code processes starting at once."),
    Setting("log_bodies", "Keep request bodies in logs", "bool",
            "Truncated and with secrets redacted."),
]
NAMES = {s.name for s in SETTINGS}


def display(config: admin_pb2.LiveConfig) -> dict[str, str]:
    """Form values (strings) of a configuration."""
    out: dict[str, str] = {}
    for s in SETTINGS:
        value = getattr(config, s.name)
        if s.kind == "aliases":
            out[s.name] = "\n".join(f"{k} = {v}" for k, v in sorted(value.items()))
        elif s.kind == "list":
            out[s.name] = ", ".join(value)
        elif s.kind == "bool":
            out[s.name] = "on" if value else ""
        else:
            out[s.name] = str(value)
    return out


def parse(form: Form) -> admin_pb2.LiveConfig:
    config = admin_pb2.LiveConfig()
    for s in SETTINGS:
        if s.kind == "aliases":
            for number, line in enumerate(form.text(s.name).splitlines(), 1):
                if not line.strip():
                    continue
                alias, sep, target = line.partition("=")
                if not sep or not alias.strip() or not target.strip():
                    form.errors[s.name] = f"Line {number}: write it as alias = model."
                    break
                config.model_aliases[alias.strip()] = target.strip()
        elif s.kind == "list":
            getattr(config, s.name).extend(form.items(s.name))
        elif s.kind == "bool":
            setattr(config, s.name, form.flag(s.name))
        elif s.kind == "choice":
            value = form.text(s.name)
            if value not in s.choices:
                form.errors[s.name] = "Choose one of " + ", ".join(s.choices) + "."
            setattr(config, s.name, value)
        else:
            setattr(config, s.name, form.integer(s.name, 0, 2**31 - 1))
    return config


def changed_fields(old: admin_pb2.LiveConfig, new: admin_pb2.LiveConfig) -> list[str]:
    out = []
    for s in SETTINGS:
        a, b = getattr(old, s.name), getattr(new, s.name)
        if s.kind == "aliases":
            differs = dict(a) != dict(b)
        elif s.kind == "list":
            differs = list(a) != list(b)
        else:
            differs = a != b
        if differs:
            out.append(s.name)
    return out


class Config(View):
    async def on_get(self, req: Request, resp: Response) -> None:
        current = await self.core.get_config(actor(req))
        await self.page(req, resp, current, display(current.config), {}, "",
                        current.version, falcon.HTTP_200)

    async def page(self, req: Request, resp: Response, current: admin_pb2.GetConfigResponse,
                   values: dict[str, str], errors: dict[str, str], error: str,
                   version: int, status: str) -> None:
        history = await self.core.list_config_history(actor(req), 20)
        render(self.site, req, resp, "config.html", status=status, page_title="Configuration",
               current=current, values=values, errors=errors, error=error, version=version,
               settings=SETTINGS, history=history.changes,
               labels={s.name: s.label for s in SETTINGS})

    async def on_post(self, req: Request, resp: Response) -> None:
        form = form_of(req)
        current = await self.core.get_config(actor(req))
        new = parse(form)
        values = {s.name: form.text(s.name) for s in SETTINGS}
        expected = form.integer("expected_version")
        if form.errors:
            await self.page(req, resp, current, values, form.errors,
                            "Fix the fields marked below.", expected, falcon.HTTP_400)
            return
        fields = changed_fields(current.config, new)
        if not fields:
            session_of(req).flash("info", "Nothing changed.")
            raise falcon.HTTPSeeOther("/config")
        try:
            reply = await self.core.update_config(actor(req), new, fields, expected)
        except CoreError as failure:
            if failure.code == grpc.StatusCode.INVALID_ARGUMENT:
                field = param_field(failure.param) if failure.param else ""
                errors = {field: failure.message} if field in NAMES else {}
                top = "Fix the fields marked below." if errors else failure.message
                await self.page(req, resp, current, values, errors, top, expected,
                                falcon.HTTP_400)
                return
            if failure.code in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION):
                await self.page(
                    req, resp, current, values, {},
                    f"Someone else changed the configuration meanwhile (now version "
                    f"{current.version}, by {current.updated_by or 'the service'}). Review "
                    "your values against the history below and save again.",
                    current.version, falcon.HTTP_409)
                return
            raise
        session_of(req).flash("success", f"Configuration saved as version {reply.version}.")
        raise falcon.HTTPSeeOther("/config")
