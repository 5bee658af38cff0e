"""Compaction: a conversation summarised by Claude Code's own `/compact`.

Sent as a turn's prompt, "/compact" makes Claude Code (2.1.331) ask the model
for a summary of the session (the whole conversation, then its summary
instruction), write a compact boundary and the summary into the transcript,
and go on from the summary in every later turn (a fork before the boundary is
no longer possible, so it runs in a fork of its own session, leaving the
original as it was). So a compaction is a turn:
it runs through the turn pipeline (admission and limits, planning, the
session's process, the request log) and is stored like one (not retrievable
as a response). Forking at it keeps the summary: the translator makes the
resume point the last message after the boundary.

What the client gets back is a token naming the compaction turn and the key
it belongs to, HMAC-signed by the core, so it cannot be forged or used by
another key; a later turn with that token continues from the compacted state.
Messages the request brings go in first as one turn of their own (with a note
asking the model only to acknowledge them), since Claude Code compacts only a
session that has messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import secrets

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service import conversation
from core_service.config import CoreConfig
from core_service.errors import InvalidArgument, NotFound
from core_service.request_context import RequestContext
from core_service.store import SessionStore
from core_service.turns.admission import Caller
from core_service.turns.outcome import TurnOutcome
from core_service.turns.service import TurnRun, TurnService

COMMAND = "/compact"
# Appended to the messages of a compaction request, so the model does not act on them.
SEED_NOTE = (
    '(These messages are recorded for a context compaction that follows: reply with "Noted." only.)'
)
TOKEN_PREFIX = "ccapi_cmp_v1."


class CompactionTokens:
    """Issues and checks the opaque token of a compaction item."""

    def __init__(self, secret: str) -> None:
        # A key of its own, derived from the shared secret every core knows.
        self._key = hashlib.sha256(b"ccapi compaction token\0" + secret.encode()).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def issue(self, key_id: str, turn_id: str) -> str:
        payload = json.dumps({"k": key_id, "t": turn_id}, separators=(",", ":")).encode()
        return TOKEN_PREFIX + ".".join(
            base64.urlsafe_b64encode(b).decode().rstrip("=") for b in (payload, self._mac(payload))
        )

    def turn_of(self, token: str, key_id: str) -> str:
        """The compaction turn the token names, for this key; NotFound otherwise
        (a foreign key's token is indistinguishable from a forged one)."""
        missing = NotFound(
            "No such compaction item for this key.", reason="compaction_not_found", param="input"
        )
        if not token.startswith(TOKEN_PREFIX):
            raise missing
        try:
            payload_b64, mac_b64 = token[len(TOKEN_PREFIX) :].split(".")
            payload, mac = (_unb64(payload_b64), _unb64(mac_b64))
        except (ValueError, binascii.Error):
            raise missing from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise missing
        fields = json.loads(payload)
        if fields.get("k") != key_id or not isinstance(fields.get("t"), str):
            raise missing
        return str(fields["t"])


def compaction_secret(config: CoreConfig) -> str:
    """The admin token every part shares; without one (a core run alone), a key
    of its own in the data dir, made once."""
    if config.admin_token:
        return config.admin_token
    path = config.data_dir / "compaction-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another core made it first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _user(text: str) -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, content=[cpb.ContentPart(text=text)])


def _total(outcomes: list[TurnOutcome]) -> ev.Usage:
    total = ev.Usage()
    for outcome in outcomes:
        usage = outcome.usage
        total.input_tokens += usage.input_tokens
        total.output_tokens += usage.output_tokens
        total.cache_read_input_tokens += usage.cache_read_input_tokens
        total.cache_creation_input_tokens += usage.cache_creation_input_tokens
        total.cost_usd += usage.cost_usd
    return total


class Compactions:
    def __init__(self, turns: TurnService, store: SessionStore, tokens: CompactionTokens) -> None:
        self._turns = turns
        self._store = store
        self._tokens = tokens

    def restore(self, caller: Caller, request: pb.RunTurnRequest) -> None:
        """A RunTurn that brings a compaction token continues from that compaction:
        previous_turn_id names it, unless the conversation after it is known
        already (a client resending the history after the item)."""
        if not request.compaction:
            return
        if request.previous_turn_id or request.session_id:
            raise InvalidArgument(
                "A compaction item cannot be combined with a previous response or session.",
                param="compaction",
            )
        turn_id = self._tokens.turn_of(request.compaction, caller.key_id)
        history = conversation.split(request.messages, request.instructions).history
        if (
            not history
            or self._store.find_turn_by_fingerprint(
                caller.key_id, conversation.fingerprint(history)
            )
            is None
        ):
            request.previous_turn_id = turn_id

    async def compact(
        self, call: RequestContext, request: pb.CompactTurnRequest
    ) -> pb.CompactTurnResponse:
        """Runs the compaction; the request log gets one row for the call, with
        the usage of every turn it took (reported here, however it ends)."""
        assert call.caller is not None, "compactions run for authenticated callers"
        if not request.model:
            raise InvalidArgument("model is required.", param="model")
        previous = request.previous_turn_id
        if request.compaction:
            if previous:
                raise InvalidArgument(
                    "A compaction item cannot be combined with a previous response.",
                    param="compaction",
                )
            previous = self._tokens.turn_of(request.compaction, call.caller.key_id)
        if not request.messages and not previous:
            raise InvalidArgument(
                "Give input, previous_response_id or both.", param="input", reason="missing_input"
            )
        outcomes: list[TurnOutcome] = []
        try:
            if request.messages:
                seed = self._request(request, [*request.messages, _user(SEED_NOTE)], previous)
                await self._run(call, seed, outcomes)
                previous = outcomes[-1].turn_id
            # In a session of its own: the one compacted stays as it was.
            compact = self._request(request, [_user(COMMAND)], previous)
            compact.fork = True
            compacted = await self._run(call, compact, outcomes)
            if not compacted:
                raise InvalidArgument(
                    "Claude Code found nothing to compact.", param="input", reason="empty"
                )
            row = await asyncio.to_thread(
                self._store.get_turn, call.caller.key_id, outcomes[-1].turn_id, False
            )
            assert row is not None, "the compaction turn was stored"
            turn = row.turn
            turn.usage.CopyFrom(_total(outcomes))
            token = self._tokens.issue(call.caller.key_id, turn.id)
            return pb.CompactTurnResponse(turn=turn, compaction=token)
        finally:
            if outcomes:
                call.reply.report(dataclasses.replace(outcomes[-1], usage=_total(outcomes)))

    @staticmethod
    def _request(
        request: pb.CompactTurnRequest, messages: list[cpb.Message], previous: str
    ) -> pb.RunTurnRequest:
        return pb.RunTurnRequest(
            model=request.model,
            messages=messages,
            instructions=request.instructions,
            previous_turn_id=previous,
            store=False,
            origin=request.origin,
        )

    async def _run(
        self, call: RequestContext, request: pb.RunTurnRequest, outcomes: list[TurnOutcome]
    ) -> bool:
        """Runs one turn to its end, its outcome added (however it ended);
        whether Claude Code compacted."""
        run: TurnRun = self._turns.run_turn(call, request)
        try:
            async for _ in run:
                pass
        finally:
            await run.aclose()
            outcomes.append(run.outcome())
        acc = run.accumulated
        return acc is not None and acc.compacted_tokens is not None
