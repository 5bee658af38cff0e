"""How the core refuses a client-streaming call (FileService.UploadFile)
while the client may still be sending.

grpcio's asyncio client reports a status that lands while one of its writes is
in flight as INTERNAL "Internal error from Core" (grpc/grpc#36066): the reason,
a 413 or a 401 to the HTTP client, is lost. So before the status the core sends
the header UPLOAD_REFUSED_HEADER and reads on, discarding, until the client
half-closes; a client that stops writing on that header always gets the real
status. One that does not stop gets it after the caps below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ccapi_client.metadata import UPLOAD_REFUSED_HEADER

DRAIN_MAX_BYTES = 8 * 1024 * 1024
DRAIN_MAX_SECONDS = 10.0


async def hear_out(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
    """Announces the refusal and waits, within the caps, for the client to stop."""
    await context.send_initial_metadata(((UPLOAD_REFUSED_HEADER, "1"),))
    taken = 0
    try:
        async with asyncio.timeout(DRAIN_MAX_SECONDS):
            async for message in requests:
                taken += message.ByteSize()
                if taken > DRAIN_MAX_BYTES:
                    return
    except TimeoutError:
        return
