"""Jinja2 with autoescaping on for every template, and the site's formatting filters."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import jinja2

from ccapi_client.enums import PERIOD_NAMES, ROLE_NAMES

TEMPLATES = Path(__file__).parent / "templates"



def fmt_time(seconds: int | float, with_seconds: bool = False) -> str:
    if not seconds:
        return "—"
    moment = dt.datetime.fromtimestamp(float(seconds), tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M") + " UTC"


def fmt_time_ms(ms: int) -> str:
    return fmt_time(ms / 1000, with_seconds=True) if ms else "—"


def fmt_iso(seconds: int | float) -> str:
    if not seconds:
        return ""
    return dt.datetime.fromtimestamp(float(seconds), tz=dt.UTC).isoformat()


def fmt_ago(seconds: int | float, now: float | None = None) -> str:
    if not seconds:
        return "never"
    delta = int((now or time.time()) - float(seconds))
    if delta < 0:
        ahead = -delta
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if ahead >= size:
                return f"in {ahead // size} {unit}"
        return "in a moment"
    if delta < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if delta >= size:
            return f"{delta // size} {unit} ago"
    return "just now"


def fmt_num(value: int | float) -> str:
    value = float(value)
    for suffix, size in (("B", 1e9), ("M", 1e6), ("k", 1e4)):
        if abs(value) >= size:
            scaled = value / (size if suffix != "k" else 1e3)
            return f"{scaled:.1f}{suffix if suffix != 'B' else 'G'}".replace(".0", "")
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def fmt_usd(value: float) -> str:
    if not value:
        return "$0"
    if value < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def fmt_ms(value: int | float) -> str:
    value = float(value)
    if not value:
        return "—"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms"


def fmt_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def pretty_json(text: str) -> str:
    """Indents JSON for reading; anything else comes back unchanged (still escaped later)."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return text


def diff_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "diff-file"
    if line.startswith("@@"):
        return "diff-hunk"
    if line.startswith("+"):
        return "diff-add"
    if line.startswith("-"):
        return "diff-del"
    return ""


def status_class(status: int) -> str:
    if status >= 500:
        return "bad"
    if status >= 400:
        return "warn"
    return "ok"


def fmt_setting(value: Any) -> str:
    """A configuration value in one line."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float, str)):
        return str(value) if value != "" else "(empty)"
    if hasattr(value, "items"):
        pairs = [f"{k}={v}" for k, v in sorted(value.items())]
        return ", ".join(pairs) or "(none)"
    return ", ".join(str(v) for v in value) or "(none)"


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        # Everything is escaped: no template may opt a value out with |safe.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        time=fmt_time,
        time_ms=fmt_time_ms,
        iso=fmt_iso,
        ago=fmt_ago,
        num=fmt_num,
        usd=fmt_usd,
        ms=fmt_ms,
        bytes=fmt_bytes,
        pretty_json=pretty_json,
        diff_class=diff_class,
        status_class=status_class,
        setting=fmt_setting,
        role=lambda r: ROLE_NAMES.get(r, "unknown"),
        period=lambda p: PERIOD_NAMES.get(p, "—"),
    )
    return env
