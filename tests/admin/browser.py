"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, and the
admin app served by uvicorn in a background thread.

Playwright is only the driver: it never downloads a browser of its own here.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.facade.fake_core import free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "admin"
CHROMIUM = os.environ.get("CCAPI_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def skip_reason() -> str:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    return ""


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class ThreadServer:
    """An ASGI app on a free loopback port, served by uvicorn in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                loop="asyncio",
                lifespan="off",
                log_level="warning",
                timeout_graceful_shutdown=1,
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="admin-web", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    """Saves a screenshot under test-artifacts/admin/ (gitignored) and returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def watch_for_trouble(page: Any) -> list[str]:
    """Collects dialogs (a script ran), page errors and CSP/console errors."""
    trouble: list[str] = []

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "confirm":  # the site's own data-confirm questions
            dialog.accept()
            return
        trouble.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda err: trouble.append(f"pageerror: {err}"))
    page.on(
        "console",
        lambda msg: (
            trouble.append(f"console: {msg.text}")
            # 4xx pages (form errors, refusals) are expected; CSP reports are not.
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    return trouble


__all__ = [
    "ARTIFACTS",
    "LAPTOP",
    "PHONE",
    "ThreadServer",
    "chromium",
    "pytest",
    "shot",
    "skip_reason",
    "watch_for_trouble",
]
