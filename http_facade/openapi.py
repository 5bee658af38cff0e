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
from http_facade.files.protocol import FileDeleted, FileList, FileObject, FileUpload
from http_facade.models.protocol import ModelList, ModelObject
from http_facade.responses.compact import CompactedObject, CompactRequest
from http_facade.responses.protocol import (
    InputItemList,
    ResponseCreateRequest,
    ResponseDeleted,
    ResponseObject,
    StreamEvent,
)
from http_facade.sessions.protocol import (
    SessionDeleted,
    SessionFileList,
    SessionList,
    SessionObject,
)

_REF = "#/components/schemas/{model}"
_MODELS: list[type[BaseModel]] = [
    ChatCompletionRequest,
    ChatCompletion,
    ChatCompletionChunk,
    ErrorResponse,
    ModelList,
    ModelObject,
    ResponseCreateRequest,
    ResponseObject,
    StreamEvent,
    ResponseDeleted,
    InputItemList,
    CompactRequest,
    CompactedObject,
    SessionList,
    SessionObject,
    SessionDeleted,
    SessionFileList,
    FileUpload,
    FileObject,
    FileList,
    FileDeleted,
]
_REQUESTS = (ChatCompletionRequest, ResponseCreateRequest, FileUpload, CompactRequest)


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
        (404, "Unknown model, response, session, file or URL"),
        (413, "Body over the size limit"),
        (429, "Rate or quota limit; see Retry-After"),
        (502, "The model side failed"),
        (503, "Model overloaded, no credentials, or core unreachable"),
        (504, "Timed out"),
    ]
}


def _path_param(name: str, description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_RESPONSE_ID = _path_param("response_id", "resp_<turn id>")
_SESSION_ID = _path_param("session_id")
_FILE_ID = _path_param("file_id", "file-<random>; another key's file is a 404")
_HEALTH = {
    "200": {
        "description": "OK",
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"status": {"type": "string"}}}
            }
        },
    }
}


def build_openapi() -> dict[str, Any]:
    """The facade's OpenAPI 3.1 document."""
    _, defs = models_json_schema(
        [(m, "validation" if m in _REQUESTS else "serialization") for m in _MODELS],
        ref_template=_REF,
    )
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "claudecode-api HTTP facade",
            "version": "1",
            "description": "OpenAI-compatible Chat Completions, Responses and Models over "
            "Claude Code, the Files API, plus /v1/sessions.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "X-Session-Id",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(ChatCompletionRequest)}},
                    },
                    "responses": {
                        "200": {
                            "description": "A completion (JSON) or a stream of chunks (SSE)",
                            "content": {
                                "application/json": {"schema": _ref(ChatCompletion)},
                                "text/event-stream": {"schema": _ref(ChatCompletionChunk)},
                            },
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/responses": {
                "post": {
                    "operationId": "createResponse",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(ResponseCreateRequest)}},
                    },
                    "responses": {
                        "200": {
                            "description": "A response (JSON) or its events (SSE with "
                            "`event:` lines and increasing sequence_number)",
                            "headers": {"X-Session-Id": {"schema": {"type": "string"}}},
                            "content": {
                                "application/json": {"schema": _ref(ResponseObject)},
                                "text/event-stream": {"schema": _ref(StreamEvent)},
                            },
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/responses/compact": {
                "post": {
                    "operationId": "compactResponse",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(CompactRequest)}},
                    },
                    "responses": {
                        "200": _json(CompactedObject, "The compacted window"),
                        **_ERRORS,
                    },
                }
            },
            "/v1/responses/{response_id}": {
                "get": {
                    "operationId": "getResponse",
                    "security": bearer,
                    "parameters": [
                        _RESPONSE_ID,
                        _query(
                            "stream",
                            {"type": "boolean"},
                            "A background response's events again (SSE), to its end",
                        ),
                        _query(
                            "starting_after",
                            {"type": "integer", "minimum": 0},
                            "With stream: only the events numbered above this sequence_number",
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "A stored response, or a background one's events",
                            "content": {
                                "application/json": {"schema": _ref(ResponseObject)},
                                "text/event-stream": {"schema": _ref(StreamEvent)},
                            },
                        },
                        **_ERRORS,
                    },
                },
                "delete": {
                    "operationId": "deleteResponse",
                    "security": bearer,
                    "parameters": [_RESPONSE_ID],
                    "responses": {"200": _json(ResponseDeleted, "Forgotten"), **_ERRORS},
                },
            },
            "/v1/responses/{response_id}/cancel": {
                "post": {
                    "operationId": "cancelResponse",
                    "security": bearer,
                    "parameters": [_RESPONSE_ID],
                    "responses": {
                        "200": _json(ResponseObject, "The response after stopping it"),
                        **_ERRORS,
                    },
                }
            },
            "/v1/responses/{response_id}/input_items": {
                "get": {
                    "operationId": "listInputItems",
                    "security": bearer,
                    "parameters": [
                        _RESPONSE_ID,
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                            "Page size",
                        ),
                        _query(
                            "order",
                            {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
                            "Order of the items",
                        ),
                        _query("after", {"type": "string"}, "An item id: list items after it"),
                    ],
                    "responses": {"200": _json(InputItemList, "A cursor page"), **_ERRORS},
                }
            },
            "/v1/sessions": {
                "get": {
                    "operationId": "listSessions",
                    "security": bearer,
                    "parameters": [
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                            "Page size",
                        ),
                        _query("page_token", {"type": "string"}, "next_page_token of a page"),
                    ],
                    "responses": {"200": _json(SessionList, "The caller's sessions"), **_ERRORS},
                }
            },
            "/v1/sessions/{session_id}": {
                "get": {
                    "operationId": "getSession",
                    "security": bearer,
                    "parameters": [_SESSION_ID],
                    "responses": {"200": _json(SessionObject, "The session"), **_ERRORS},
                },
                "delete": {
                    "operationId": "deleteSession",
                    "security": bearer,
                    "parameters": [_SESSION_ID],
                    "responses": {
                        "200": _json(SessionDeleted, "Process stopped, workspace removed"),
                        **_ERRORS,
                    },
                },
            },
            "/v1/sessions/{session_id}/files": {
                "get": {
                    "operationId": "listSessionFiles",
                    "security": bearer,
                    "parameters": [_SESSION_ID],
                    "responses": {
                        "200": _json(SessionFileList, "The workspace's files"),
                        **_ERRORS,
                    },
                }
            },
            "/v1/sessions/{session_id}/files/{path}": {
                "get": {
                    "operationId": "getSessionFile",
                    "security": bearer,
                    "parameters": [
                        _SESSION_ID,
                        _path_param(
                            "path",
                            "Relative to the workspace; may contain '/'. Paths leaving the "
                            "workspace ('..', absolute, symlinks out) are refused.",
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "The file's bytes, with its content type",
                            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/files": {
                "post": {
                    "operationId": "createFile",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": _ref(FileUpload)}},
                    },
                    "responses": {
                        "200": _json(FileObject, "The stored file"),
                        **_ERRORS,
                        "413": _json(ErrorResponse, "The file is over the live max_file_bytes"),
                    },
                },
                "get": {
                    "operationId": "listFiles",
                    "security": bearer,
                    "parameters": [
                        _query("purpose", {"type": "string"}, "Only files with this purpose"),
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10000},
                            "Page size",
                        ),
                        _query(
                            "order",
                            {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
                            "By created_at",
                        ),
                        _query("after", {"type": "string"}, "A file id: list files after it"),
                    ],
                    "responses": {"200": _json(FileList, "The caller's files"), **_ERRORS},
                },
            },
            "/v1/files/{file_id}": {
                "get": {
                    "operationId": "retrieveFile",
                    "security": bearer,
                    "parameters": [_FILE_ID],
                    "responses": {"200": _json(FileObject, "The file"), **_ERRORS},
                },
                "delete": {
                    "operationId": "deleteFile",
                    "security": bearer,
                    "parameters": [_FILE_ID],
                    "responses": {"200": _json(FileDeleted, "Deleted with its bytes"), **_ERRORS},
                },
            },
            "/v1/files/{file_id}/content": {
                "get": {
                    "operationId": "downloadFile",
                    "security": bearer,
                    "parameters": [_FILE_ID],
                    "responses": {
                        "200": {
                            "description": "The file's bytes",
                            "content": {
                                "application/octet-stream": {
                                    "schema": {"type": "string", "format": "binary"}
                                }
                            },
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "security": bearer,
                    "responses": {"200": _json(ModelList, "The models and aliases"), **_ERRORS},
                }
            },
            "/v1/models/{model_id}": {
                "get": {
                    "operationId": "retrieveModel",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "model_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": _json(ModelObject, "The model"), **_ERRORS},
                }
            },
            "/health": {"get": {"operationId": "health", "responses": _HEALTH}},
            "/health/live": {"get": {"operationId": "live", "responses": _HEALTH}},
            "/health/ready": {
                "get": {
                    "operationId": "ready",
                    "responses": {
                        **_HEALTH,
                        "503": {"description": "The core or its database does not answer"},
                    },
                }
            },
        },
    }


class OpenAPI:
    def __init__(self) -> None:
        self.doc = build_openapi()

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = self.doc
