"""POST /v1/responses/compact: a conversation compacted by Claude Code's own /compact.

The request names the conversation as POST /v1/responses would (`input`,
`previous_response_id`, or both); the core compacts its session and hands back
an opaque token, returned as the `encrypted_content` of a `compaction` item
after the request's user messages (OpenAI's compacted window). A later
POST /v1/responses whose input holds that item goes on from the compacted
state; items before the item are covered by it.
"""

from __future__ import annotations

from typing import Any, Literal

import falcon.asgi
import grpc.aio
from pydantic import BaseModel, Field

from claudecode.v1 import agent_pb2
from http_facade.body import read_json
from http_facade.config import FacadeConfig
from http_facade.core_client import CoreClient, auth_metadata
from http_facade.errors import from_rpc_error, invalid_request
from http_facade.inputs import validate_body
from http_facade.live_settings import body_limit
from http_facade.wire import Strict

from .outcome import usage_dict
from .protocol import PREFIX, InputItem, ResponseCreateRequest, ResponseUsage
from .request import check_text_and_items, for_responses, to_run_turn_request

ENDPOINT = "/v1/responses/compact"
ITEM_PREFIX = "cmp_"


class CompactRequest(Strict):
    """The spec's CompactResponseMethodPublicBody, plus OpenAI's caching knobs."""

    model: str | None = Field(None, max_length=256, description="Required.")
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = Field(None, max_length=256)
    prompt_cache_key: str | None = Field(None, description="Accepted and ignored.")
    prompt_cache_retention: str | None = Field(None, description="Accepted and ignored.")
    prompt_cache_options: dict[str, Any] | None = Field(None, description="Accepted and ignored.")
    service_tier: str | None = Field(None, description="Accepted and ignored.")


class CompactionItem(BaseModel):
    """The compaction item: `encrypted_content` is opaque (see the README)."""

    id: str
    type: Literal["compaction"]
    encrypted_content: str


class CompactedObject(BaseModel):
    """The spec's CompactResource (documentation of what the facade sends)."""

    id: str = Field(description="resp_<compaction turn id>")
    object: Literal["response.compaction"]
    created_at: int
    output: list[dict[str, Any]] = Field(
        description="The request's user messages, then one compaction item."
    )
    usage: ResponseUsage


def validate_compact(body: Any) -> CompactRequest:
    """The request body as a model, or an ApiError (400) naming the param."""
    req = validate_body(body, CompactRequest, {}, check_text_and_items)
    if not req.model:
        raise invalid_request(
            "Missing required parameter: 'model'.", "model", "missing_required_parameter"
        )
    if not req.input and req.previous_response_id is None:
        raise invalid_request(
            "Give 'input', 'previous_response_id' or both.", "input", "missing_required_parameter"
        )
    return req


def to_compact_request(req: CompactRequest, request_id: str) -> agent_pb2.CompactTurnRequest:
    """The core's request, its conversation read as POST /v1/responses reads one."""
    create = ResponseCreateRequest.model_construct(
        model=req.model, input=req.input or [], previous_response_id=req.previous_response_id
    )
    run = to_run_turn_request(create, request_id=request_id)
    return agent_pb2.CompactTurnRequest(
        model=run.model,
        messages=run.messages,
        instructions=req.instructions or "",
        previous_turn_id=run.previous_turn_id,
        origin=agent_pb2.RequestOrigin(endpoint=ENDPOINT, request_id=request_id),
        # An input that holds an earlier compaction item compacts on from it.
        compaction=run.compaction,
    )


def _user_items(req: CompactRequest, turn_id: str) -> list[dict[str, Any]]:
    """The request's user messages, as the compacted window lists them (the
    spec's Message: id, status, role, content)."""
    contents: list[list[dict[str, Any]]] = []
    if isinstance(req.input, str):
        contents.append([_input_text(req.input)])
    for item in req.input if isinstance(req.input, list) else []:
        dumped = item.model_dump(exclude_none=True)
        if dumped.get("role") == "user":
            content = dumped["content"]
            contents.append([_input_text(content)] if isinstance(content, str) else content)
    return [
        {
            "id": f"msg_{turn_id}_{i}",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": content,
        }
        for i, content in enumerate(contents)
    ]


def _input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def compacted(req: CompactRequest, resp: agent_pb2.CompactTurnResponse) -> dict[str, Any]:
    """The spec's CompactResource."""
    turn = resp.turn
    item = {"id": ITEM_PREFIX + turn.id, "type": "compaction", "encrypted_content": resp.compaction}
    return {
        "id": PREFIX + turn.id,
        "object": "response.compaction",
        "created_at": turn.created_at,
        "output": [*_user_items(req, turn.id), item],
        "usage": usage_dict(turn.usage),
    }


class ResponsesCompact:
    """POST /v1/responses/compact: one CompactTurn call."""

    def __init__(self, core: CoreClient, config: FacadeConfig) -> None:
        self.core = core
        self.config = config

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, body_limit(req, self.config.max_body_bytes))
        compact = validate_compact(body)
        request = to_compact_request(compact, req.context.request_id)
        metadata = auth_metadata(
            req.get_header("Authorization"), req.context.request_id, req.uri_template
        )
        try:
            result = await self.core.compact_turn(request, metadata)
        except grpc.aio.AioRpcError as err:
            raise for_responses(
                from_rpc_error(err, started=False), compact.previous_response_id
            ) from None
        resp.media = compacted(compact, result)
