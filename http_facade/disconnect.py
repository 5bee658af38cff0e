"""Knowing promptly that the HTTP client went away.

Falcon only notices a disconnect between two SSE events; a turn that is quiet
for a while would keep running. :class:`http_facade.app.FacadeApp` wraps the
ASGI ``receive`` callable so an ``http.disconnect`` sets an event and runs the
request's cleanups (which cancel its gRPC call) at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

DISCONNECTED_KEY = "ccapi.disconnected"
RECEIVE_KEY = "ccapi.receive"
CLEANUPS_KEY = "ccapi.cleanups"

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def install(
    scope: MutableMapping[str, Any], receive: Receive
) -> tuple[Receive, Callable[[], None]]:
    """Puts the disconnect event and cleanup list into ``scope``.

    Returns the wrapped receive and a function running (once) every cleanup.
    """
    gone = asyncio.Event()
    cleanups: list[Callable[[], None]] = []

    def run_cleanups() -> None:
        while cleanups:
            cleanups.pop()()

    async def wrapped() -> MutableMapping[str, Any]:
        msg = await receive()
        if msg.get("type") == "http.disconnect":
            gone.set()
            run_cleanups()
        return msg

    scope[DISCONNECTED_KEY] = gone
    scope[RECEIVE_KEY] = wrapped
    scope[CLEANUPS_KEY] = cleanups
    return wrapped, run_cleanups


def gone_event(scope: MutableMapping[str, Any]) -> asyncio.Event:
    event = scope.get(DISCONNECTED_KEY)
    return event if isinstance(event, asyncio.Event) else asyncio.Event()


def on_disconnect(scope: MutableMapping[str, Any], fn: Callable[[], None]) -> None:
    """Runs ``fn`` when the client disconnects or, at the latest, when the request ends."""
    cleanups = scope.get(CLEANUPS_KEY)
    if isinstance(cleanups, list):
        cleanups.append(fn)


def watch(scope: MutableMapping[str, Any]) -> asyncio.Task[None] | None:
    """For non-streaming requests, once the body was read: waits for http.disconnect."""
    receive = scope.get(RECEIVE_KEY)
    gone = scope.get(DISCONNECTED_KEY)
    if receive is None or not isinstance(gone, asyncio.Event):
        return None

    async def loop() -> None:
        while not gone.is_set():
            await receive()

    return asyncio.ensure_future(loop())


def stop(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
