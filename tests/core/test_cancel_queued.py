"""CancelTurn reaches a turn still waiting for a Claude Code process slot: it
ends cancelled, its wait ends, nothing is started for it, and the slot it
waited for is not taken."""

from __future__ import annotations

import sqlite3
import threading
import time

import grpc

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import agent_pb2_grpc
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from tests.core.helpers import TurnLog, request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.procmem import claude_count
from tests.stack import start_core

LOOKUP = cpb.ClientTool(
    name="lookup",
    description="Look something up.",
    parameters_json='{"type": "object", "properties": {"q": {"type": "string"}}}',
)


def _in_progress(db: str, besides: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id FROM turns WHERE status = ? AND id != ?",
            (pb.TURN_STATUS_IN_PROGRESS, besides),
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_a_turn_waiting_for_a_process_slot_can_be_cancelled(model_double: ModelDouble) -> None:
    core = start_core(
        model_double.url,
        CCAPI_MAX_LIVE_PROCESSES="1",
        CCAPI_POOL_SIZE="0",
        CCAPI_MAX_QUEUE_WAIT_SECONDS="60",
    )
    try:
        # The one process slot is held by a turn waiting for the client's tool result.
        model_double.script(
            Reply.call_tools([("lookup", {"q": "tides"})], ids=["toolu_c1"]),
            Reply.echo_tool_results(),
        )
        holder = run_turn(core, request("tides", tools=[LOOKUP]))
        holder_id = holder.started.started.turn_id
        assert holder.of("completed")[0].completed.finish_reason == ev.FINISH_REASON_TOOL_CALLS

        log_box: list[TurnLog] = []
        waiter = threading.Thread(
            target=lambda: log_box.append(run_turn(core, request("another talk"))), daemon=True
        )
        waiter.start()
        db = str(core.data_dir / "ccapi.db")
        deadline = time.monotonic() + 30
        while not _in_progress(db, holder_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        waiting_ids = _in_progress(db, holder_id)
        assert len(waiting_ids) == 1, "the second turn should be stored and waiting"

        with core.channel() as channel:
            cancelled = agent_pb2_grpc.AgentServiceStub(channel).CancelTurn(
                pb.CancelTurnRequest(turn_id=waiting_ids[0]), metadata=core.metadata()
            )
        assert cancelled.turn.status == pb.TURN_STATUS_CANCELLED
        waiter.join(10)
        assert log_box, "the cancelled turn's call did not end"
        error = log_box[0].error
        assert error is not None and error.code() == grpc.StatusCode.CANCELLED
        assert claude_count(core.process.pid) == 1  # nothing started for it

        # The holder is untouched: its result still continues it.
        answered = run_turn(
            core,
            pb.RunTurnRequest(
                model="sonnet",
                previous_turn_id=holder_id,
                messages=[
                    cpb.Message(
                        role=cpb.ROLE_TOOL,
                        content=[
                            cpb.ContentPart(
                                tool_output=cpb.ClientToolOutput(call_id="toolu_c1", output="six")
                            )
                        ],
                    )
                ],
            ),
        )
        assert answered.of("completed")[0].completed.text == "lookup: six"
    finally:
        core.cleanup()
