"""The database's disk fills up: requests fail with a clear error, nothing is
left half-written, and once there is space again requests work."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import agent_pb2_grpc
from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, start_core

TMPFS_SIZE = "16m"


@pytest.fixture(scope="module")
def small_disk() -> Iterator[Path]:
    """A tiny tmpfs for the database alone (the suite runs as root)."""
    where = Path(tempfile.mkdtemp(prefix="ccapi-small-disk-", dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


@pytest.fixture(scope="module")
def core_on_small_disk(model_double: ModelDouble, small_disk: Path) -> Iterator[CoreProcess]:
    process = start_core(model_double.url, CCAPI_DATABASE_URL=f"sqlite:///{small_disk}/ccapi.db")
    yield process
    process.cleanup()


def _fill(directory: Path) -> Path:
    """Writes a file until the disk is full; returns it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def _reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def _integrity(small_disk: Path) -> str:
    with sqlite3.connect(small_disk / "ccapi.db", timeout=30) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_full_disk_fails_requests_clearly_and_recovers(
    core_on_small_disk: CoreProcess, model_double: ModelDouble, small_disk: Path
) -> None:
    core = core_on_small_disk
    model_double.set_default(Reply.text("Plenty of room."))
    before = run_turn(core, request("hello", store=True))
    assert before.error is None, before.error
    session_id = before.started.started.session_id

    filler = _fill(small_disk)
    try:
        started = time.monotonic()
        full = run_turn(core, request("and now?", session_id=session_id, store=True))
        assert time.monotonic() - started < 10
        assert full.error is not None
        assert full.error.code() == grpc.StatusCode.UNAVAILABLE
        assert _reason(full.error) == "storage_full"
        assert "no disk space" in (full.error.details() or "")
        assert "sqlite" not in (full.error.details() or "").lower()
    finally:
        filler.unlink()

    assert _integrity(small_disk) == "ok"
    after = run_turn(core, request("room again?", session_id=session_id, store=True))
    assert after.error is None, after.error
    assert after.of("completed")[0].completed.text == "Plenty of room."


def test_a_disk_that_fills_mid_turn_leaves_no_turn_stuck(
    core_on_small_disk: CoreProcess, model_double: ModelDouble, small_disk: Path
) -> None:
    core = core_on_small_disk
    model_double.script(Reply.hang(3, "Too late to store."))
    filler: Path | None = None
    log = None
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        call = stub.RunTurn(request("fill up", store=True), metadata=core.metadata(), timeout=60)
        events = []
        try:
            for event in call:
                events.append(event)
                if event.WhichOneof("event") == "started":
                    # Stored as running; the disk fills before it can be stored as done.
                    model_double.wait_for_requests(1, timeout=30)
                    filler = _fill(small_disk)
        except grpc.RpcError as error:
            log = error
        finally:
            if filler is not None:
                filler.unlink()
    assert log is not None and log.code() == grpc.StatusCode.UNAVAILABLE, log
    assert _reason(log) == "storage_full"
    turn_id = events[0].started.turn_id

    # With space back, the core notices the turn it could not finish storing.
    deadline = time.monotonic() + 60
    status = pb.TURN_STATUS_IN_PROGRESS
    while time.monotonic() < deadline:
        with core.channel() as channel:
            status = (
                agent_pb2_grpc.AgentServiceStub(channel)
                .GetTurn(pb.GetTurnRequest(turn_id=turn_id), metadata=core.metadata(), timeout=10)
                .turn.status
            )
        if status != pb.TURN_STATUS_IN_PROGRESS:
            break
        time.sleep(1)
    assert status == pb.TURN_STATUS_FAILED
    assert _integrity(small_disk) == "ok"
    model_double.script(Reply.text("Fine again."))
    again = run_turn(core, request("and now?", session_id=events[0].started.session_id))
    assert again.error is None, again.error
