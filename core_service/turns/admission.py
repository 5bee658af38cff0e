"""Admission: whether a turn may run at all, and in what shape.

Checked in this order, before any session is chosen: the service accepts
turns, Claude credentials exist, the model resolves, the messages split into
system text, history and prompt, the options are valid, and the key's limits
let the turn through. `release` gives the key's concurrency slot back and
books the turn's tokens and cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from ccapi_client.enums import REASONING_EFFORTS
from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import events_pb2 as ev
from core_service import conversation
from core_service.agent import structured_output
from core_service.agent.options import ProcessShape
from core_service.errors import FailedPrecondition, InvalidArgument
from core_service.keys import KeyInfo
from core_service.limits import Admission, LimitGate
from core_service.model_catalog import ModelCatalog
from core_service.turns.tool_requests import with_client_tools

CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
# OpenAI's reasoning_effort values, mapped onto Claude Code's.


@dataclass(frozen=True)
class Caller:
    """Who runs the turn: the authenticated key and its tool policy."""

    key_id: str
    allowed_tools: tuple[str, ...] | None = None
    key: KeyInfo | None = None


@dataclass(frozen=True)
class AdmittedTurn:
    """A turn let through, with what the rest of the pipeline needs."""

    model: str
    turn_input: conversation.TurnInput
    shape: ProcessShape
    # None for callers without a key record (no limits to release).
    admission: Admission | None

    @property
    def headers(self) -> dict[str, str]:
        """x-ratelimit-* metadata for the caller."""
        return dict(self.admission.headers) if self.admission is not None else {}


def has_credentials(claude_env: Mapping[str, str]) -> bool:
    return any(claude_env.get(name) for name in CREDENTIAL_VARS)


def effort(value: str) -> str:
    if not value:
        return ""
    if value not in REASONING_EFFORTS:
        raise InvalidArgument(
            f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}.",
            param="reasoning_effort",
        )
    return REASONING_EFFORTS[value]


class Admissions:
    def __init__(
        self, claude_env: Mapping[str, str], catalog: ModelCatalog, gate: LimitGate
    ) -> None:
        self._claude_env = claude_env
        self._catalog = catalog
        self._gate = gate

    def has_credentials(self) -> bool:
        return has_credentials(self._claude_env)

    def resolve_model(self, request: pb.RunTurnRequest) -> str:
        """The model id the turn runs on; first, so even a refused turn logs it."""
        if not self.has_credentials():
            raise FailedPrecondition(
                "Claude credentials are not configured: set ANTHROPIC_API_KEY or "
                "CLAUDE_CODE_OAUTH_TOKEN for the core service.",
                reason="missing_credentials",
            )
        return self._catalog.resolve(request.model or "sonnet").id

    async def admit(
        self,
        caller: Caller,
        request: pb.RunTurnRequest,
        model: str,
        lent: AdmittedTurn | None = None,
    ) -> AdmittedTurn:
        """Validates the request and takes the key's limits; raises what the caller
        sees. With `lent` (a waiting turn's slot) it runs on that concurrency
        lease instead of taking one; the other limits still count it."""
        turn_input = conversation.split(request.messages, request.instructions)
        shape = ProcessShape(
            model=model,
            system_append=turn_input.system_append,
            max_output_tokens=max(0, request.options.max_output_tokens),
            effort=effort(request.options.reasoning_effort),
            allowed_tools=caller.allowed_tools,
            output_format=structured_output.shape_value(request.output_format),
        )
        key_default = caller.key.builtin_tools_default if caller.key is not None else False
        shape = with_client_tools(shape, request, caller.allowed_tools, key_default)
        admission: Admission | None = None
        if caller.key is not None:
            names = {request.model, model, *self._catalog.aliases_of(model)}
            self._gate.check_model(caller.key, {n for n in names if n})
            lease = lent.admission.lease if lent is not None and lent.admission else None
            admission = await asyncio.to_thread(self._gate.admit, caller.key, lease)
        return AdmittedTurn(model, turn_input, shape, admission)

    async def book(self, admitted: AdmittedTurn, usage: ev.Usage) -> None:
        """Books what the turn used, leaving its concurrency lease to whoever runs on it."""
        if admitted.admission is None:
            return
        booked = AdmittedTurn(
            admitted.model,
            admitted.turn_input,
            admitted.shape,
            Admission(admitted.admission.key_id, ""),
        )
        await self.release(booked, usage)

    async def release(self, admitted: AdmittedTurn, usage: ev.Usage) -> None:
        """Books what the turn used; shielded, since it runs as the call ends."""
        if admitted.admission is None:
            return
        tokens = usage.input_tokens + usage.output_tokens
        await asyncio.shield(
            asyncio.to_thread(self._gate.release, admitted.admission, tokens, usage.cost_usd)
        )
