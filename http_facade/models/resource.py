"""Models: ids and aliases from the core's ModelService, in OpenAI's shape."""

from __future__ import annotations

from typing import Any

import falcon.asgi
import grpc
import grpc.aio

from claudecode.v1 import models_pb2
from http_facade.core_client import CoreClient, auth_metadata
from http_facade.errors import from_status


def model_entry(name: str, model: models_pb2.Model) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": int(model.created),
        "owned_by": model.owned_by or "anthropic",
    }


def model_list(resp: models_pb2.ListModelsResponse) -> dict[str, Any]:
    """Every model, then each alias as its own entry (first occurrence wins)."""
    seen: set[str] = set()
    data: list[dict[str, Any]] = []
    for model in resp.models:
        for name in (model.id, *model.aliases):
            if name and name not in seen:
                seen.add(name)
                data.append(model_entry(name, model))
    return {"object": "list", "data": data}


class Models:
    def __init__(self, core: CoreClient) -> None:
        self.core = core

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        md = auth_metadata(
            req.get_header("Authorization"), req.context.request_id, req.uri_template
        )
        resp.media = model_list(await self.core.list_models(md))


class Model:
    def __init__(self, core: CoreClient) -> None:
        self.core = core

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model_id: str
    ) -> None:
        md = auth_metadata(
            req.get_header("Authorization"), req.context.request_id, req.uri_template
        )
        try:
            found = await self.core.get_model(model_id, md)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise from_status(
                    err.code(), f"The model '{model_id}' does not exist.", "model_not_found"
                ) from None
            raise
        resp.media = model_entry(model_id, found.model)
