"""A grpc.aio channel made on first use, in the process and on the event loop
that use it: never at import time, so it survives gunicorn's fork, and made
again when a test (or a worker) runs on a new loop."""

from __future__ import annotations

import asyncio
import os

import grpc.aio

# The largest message either side accepts. Above the HTTP body limit's default
# (10 MB), so a body the facade accepts is never refused by gRPC for its size;
# the facade refuses larger requests itself with a 413.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

MESSAGE_SIZE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    *MESSAGE_SIZE_OPTIONS,
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 0),
    # A restarted core is found within a second or two, not after gRPC's
    # default reconnect backoff (up to two minutes) has run out.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class LazyChannel:
    """One insecure channel to ``addr``, opened by :meth:`get`."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self._channel: grpc.aio.Channel | None = None
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> grpc.aio.Channel:
        """The channel of this process and running loop (call from a coroutine)."""
        loop = asyncio.get_running_loop()
        if self._channel is None or self._pid != os.getpid() or self._loop is not loop:
            self._channel = grpc.aio.insecure_channel(self.addr, options=CHANNEL_OPTIONS)
            self._pid = os.getpid()
            self._loop = loop
        return self._channel

    async def close(self) -> None:
        # A channel inherited through fork belongs to the parent: only forget it.
        if self._channel is not None and self._pid == os.getpid():
            await self._channel.close()
        self._channel = None
