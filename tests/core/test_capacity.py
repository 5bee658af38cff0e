"""Capacity, end to end over the real CLI: live processes stay under their
cap however many conversations come and go (memory measured as PSS of the
core and all its Claude Code children), a burst of new conversations queues
and completes with no error, and a turn that cannot be queued is refused
with `overloaded` and a retry delay, its queue time in the request log."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from claudecode.v1 import admin_pb2, admin_pb2_grpc
from tests.core.helpers import TurnLog, request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.procmem import claude_count, tree_pss_bytes
from tests.stack import CoreProcess, start_core

MIB = 1024 * 1024


def _details(error: grpc.RpcError) -> tuple[str, int]:
    """(ErrorInfo reason, RetryInfo seconds) of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    reason, retry = "", 0
    for detail in status.details:
        info, delay = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(delay):
            retry = delay.retry_delay.seconds
    return reason, retry


def _completed(log: TurnLog) -> bool:
    return log.error is None and bool(log.of("completed"))


def test_a_hundred_conversations_in_a_row_stay_within_the_cap_and_flat_memory(
    model_double: ModelDouble,
) -> None:
    core = start_core(
        model_double.url,
        CCAPI_MAX_LIVE_PROCESSES="3",
        CCAPI_MAX_RUNNING_TURNS="2",
        CCAPI_POOL_SIZE="1",
    )
    try:
        assert "max_live_processes" in core.logs()  # the caps are printed at start
        most_claude, pss = 0, {}
        for n in range(1, 101):
            log = run_turn(core, request(f"conversation {n}, one short answer"))
            assert _completed(log), (n, log.error, core.logs()[-2000:])
            most_claude = max(most_claude, claude_count(core.process.pid))
            if n in (25, 100):
                pss[n] = tree_pss_bytes(core.process.pid)
        assert most_claude <= 3
        # Flat once the cap is reached: 75 more conversations added (almost) nothing.
        assert pss[100] <= pss[25] * 1.15 + 20 * MIB, {n: v // MIB for n, v in pss.items()}
        # An evicted conversation resumes on demand, its history intact.
        first = run_turn(core, request("remember the word apricot"))
        session_id = first.started.started.session_id
        for n in range(4):
            assert _completed(run_turn(core, request(f"pushing it out {n}")))
        model_double.script(Reply.text("resumed fine"))
        again = run_turn(core, request("what was the word?", session_id=session_id))
        assert _completed(again) and again.started.started.resumed
        assert "apricot" in str(model_double.main_requests[-1].messages)
    finally:
        core.cleanup()


def test_a_burst_of_32_new_conversations_all_complete(model_double: ModelDouble) -> None:
    model_double.set_default(Reply.text("a burst answer in a few pieces", chunks=4, delay=0.02))
    core = start_core(
        model_double.url,
        CCAPI_MAX_LIVE_PROCESSES="6",
        CCAPI_MAX_RUNNING_TURNS="4",
        CCAPI_MAX_QUEUED_TURNS="32",
        CCAPI_MAX_QUEUE_WAIT_SECONDS="300",
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            logs = list(
                pool.map(
                    lambda n: run_turn(core, request(f"burst {n}"), timeout=400), range(32)
                )
            )
        failed = [(n, log.error) for n, log in enumerate(logs) if not _completed(log)]
        assert not failed, failed
        assert len({log.started.started.session_id for log in logs}) == 32
        assert claude_count(core.process.pid) <= 6
    finally:
        core.cleanup()


def test_a_turn_that_cannot_be_queued_is_refused_with_a_retry_delay(
    model_double: ModelDouble,
) -> None:
    core = start_core(
        model_double.url,
        CCAPI_MAX_RUNNING_TURNS="1",
        CCAPI_MAX_QUEUED_TURNS="1",
        CCAPI_MAX_QUEUE_WAIT_SECONDS="120",
    )
    try:
        slow = Reply.text("slowly, in many pieces", chunks=20, delay=0.25)
        model_double.set_default(slow)
        results: dict[str, TurnLog] = {}

        def run(name: str) -> None:
            results[name] = run_turn(core, request(f"{name} please"), timeout=120)

        first = threading.Thread(target=run, args=("first",))
        first.start()
        _wait_until(lambda: _asked(model_double, "first please"))
        queued = threading.Thread(target=run, args=("queued",))
        queued.start()
        time.sleep(1.0)  # queued behind the first
        refused = run_turn(core, request("one too many"))
        first.join()
        queued.join()
        assert _completed(results["first"]) and _completed(results["queued"])
        assert refused.error is not None
        assert refused.error.code() == grpc.StatusCode.UNAVAILABLE
        reason, retry = _details(refused.error)
        assert reason == "overloaded" and retry >= 1
        turn_id = results["queued"].started.started.turn_id
        row = _wait_for_log(core, lambda r: r.turn_id == turn_id)
        assert row.queue_ms >= 900 and row.status == 200
        assert _wait_for_log(core, lambda r: r.status == 503 and "capacity" in r.error)
    finally:
        core.cleanup()


def _asked(double: ModelDouble, text: str) -> bool:
    """The model double was asked `text`: that turn is running."""
    return any(text in r.last_user_text for r in double.main_requests)


def _logs(core: CoreProcess) -> list[admin_pb2.RequestLog]:
    with core.channel() as channel:
        reply = admin_pb2_grpc.AdminServiceStub(channel).ListRequestLogs(
            admin_pb2.ListRequestLogsRequest(page_size=200), metadata=core.admin_metadata()
        )
        return list(reply.logs)


def _wait_for_log(core: CoreProcess, match: object, timeout: float = 30) -> admin_pb2.RequestLog:
    assert callable(match)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in _logs(core):
            if match(row):
                return row
        time.sleep(0.2)
    raise AssertionError("no such request-log row")


def _wait_until(condition: object, timeout: float = 30) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail("condition not reached")
