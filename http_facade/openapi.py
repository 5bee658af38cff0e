"""/openapi.json, generated from the pydantic wire models."""

from __future__ import annotations

from typing import Any

import falcon.asgi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from http_facade.chat.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ErrorResponse,
)
from http_facade.models.protocol import ModelList, ModelObject

_REF = "#/components/schemas/{model}"
_MODELS: list[type[BaseModel]] = [
    ChatCompletionRequest, ChatCompletion, ChatCompletionChunk, ErrorResponse, ModelList,
    ModelObject,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


_ERRORS = {
    str(code): _json(ErrorResponse, text)
    for code, text in [
        (400, "Malformed JSON, schema violation or unsupported parameter"),
        (401, "Missing or invalid API key"),
        (403, "Permission denied"),
        (404, "Unknown model or URL"),
        (413, "Body over the size limit"),
        (429, "Rate or quota limit; see Retry-After"),
        (502, "The model side failed"),
        (503, "Model overloaded, no credentials, or core unreachable"),
        (504, "Timed out"),
    ]
}
_HEALTH = {"200": {"description": "OK", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"status": {"type": "string"}}}}}}}


def build_openapi() -> dict[str, Any]:
    """The facade's OpenAPI 3.1 document."""
    _, defs = models_json_schema(
        [(m, "validation" if m is ChatCompletionRequest else "serialization") for m in _MODELS],
        ref_template=_REF,
    )
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "claudecode-api HTTP facade",
            "version": "1",
            "description": "OpenAI-compatible Chat Completions and Models over Claude Code.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/chat/completions": {"post": {
                "operationId": "createChatCompletion",
                "security": bearer,
                "parameters": [{"name": "X-Session-Id", "in": "header", "required": False,
                                "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref(ChatCompletionRequest)}}},
                "responses": {
                    "200": {"description": "A completion (JSON) or a stream of chunks (SSE)",
                            "content": {
                                "application/json": {"schema": _ref(ChatCompletion)},
                                "text/event-stream": {"schema": _ref(ChatCompletionChunk)},
                            }},
                    **_ERRORS,
                },
            }},
            "/v1/models": {"get": {
                "operationId": "listModels", "security": bearer,
                "responses": {"200": _json(ModelList, "The models and aliases"), **_ERRORS},
            }},
            "/v1/models/{model_id}": {"get": {
                "operationId": "retrieveModel", "security": bearer,
                "parameters": [{"name": "model_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json(ModelObject, "The model"), **_ERRORS},
            }},
            "/health": {"get": {"operationId": "health", "responses": _HEALTH}},
            "/health/live": {"get": {"operationId": "live", "responses": _HEALTH}},
            "/health/ready": {"get": {"operationId": "ready", "responses": {
                **_HEALTH, "503": {"description": "The core or its database does not answer"}}}},
        },
    }


class OpenAPI:
    def __init__(self) -> None:
        self.doc = build_openapi()

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = self.doc
