"""The HTTP client's address, for the core: it counts wrong API keys per
address and sees only the facade's own.

The address is the connection's peer, or behind a trusted reverse proxy
(CCAPI_TRUST_PROXY=1) the last X-Forwarded-For entry, the one that proxy added
(earlier entries are the client's to choose). uvicorn's own proxy-header
handling is off (ccapi_client.gunicorn_app), so nothing else rewrites it.

Every core call a request makes carries it. It is kept in a context variable
for the request's task rather than passed through each resource: the
middleware sets it, `CoreClient` adds it to each call's metadata.
"""

from __future__ import annotations

import contextvars

import falcon.asgi

CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("ccapi_client_address", default="")


def client_address(req: falcon.asgi.Request, trust_proxy: bool) -> str:
    if trust_proxy:
        forwarded = [a.strip() for a in (req.get_header("X-Forwarded-For") or "").split(",")]
        if forwarded[-1]:
            return forwarded[-1][:100]
    return str(req.remote_addr or "")[:100]


class ClientAddressMiddleware:
    def __init__(self, trust_proxy: bool) -> None:
        self.trust_proxy = trust_proxy

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        CURRENT.set(client_address(req, self.trust_proxy))
