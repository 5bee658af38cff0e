"""Crash recovery on one database shared by several cores: only what dead
cores left is finished, once, whoever does it; a live core's turn is never
touched."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ccapi_client.status_table import http_status
from claudecode.v1 import agent_pb2 as pb
from core_service.agent.workspace_layout import Place
from core_service.db.engine import make_engine
from core_service.db.models import CoreInstance, RequestLogRecord, TurnLease, TurnRecord
from core_service.domain import codec
from core_service.domain.turn import Turn, TurnStatus, Usage
from core_service.keys import KeyInfo, KeyLimits, KeySpec, KeyStore
from core_service.limits import LimitGate
from core_service.recovery import Instance, Recovery, _place
from core_service.request_log import Journal, LogEntry, RequestLogWriter
from core_service.servicers import convert
from core_service.store import SessionStore


@pytest.fixture
def alive_pid() -> Iterator[int]:
    child = subprocess.Popen(["sleep", "60"])
    yield child.pid
    child.kill()
    child.wait()


@pytest.fixture
def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def key(sessions: sessionmaker[Session]) -> KeyInfo:
    info, _ = KeyStore(sessions).create(
        "recovery", spec=KeySpec(name="recovery", limits=KeyLimits(max_concurrent=5))
    )
    return info


class Cluster:
    """Cores sharing one database, as far as recovery can tell."""

    def __init__(self, url: str, sessions: sessionmaker[Session], journals: Path) -> None:
        self.url = url
        self.sessions = sessions
        self.journals = journals

    def recovery(self, instance: Instance) -> Recovery:
        gate = LimitGate(make_engine(self.url), self.sessions, owner=instance.id)
        writer = RequestLogWriter(self.sessions)
        return Recovery(self.sessions, gate, writer, self.journals, instance, http_status)

    def core(self, instance: Instance, seen_ago: timedelta = timedelta()) -> None:
        self.recovery(instance).register()
        if seen_ago:
            with self.sessions.begin() as db:
                db.execute(
                    update(CoreInstance)
                    .where(CoreInstance.id == instance.id)
                    .values(heartbeat_at=datetime.now(UTC) - seen_ago)
                )

    def turn(self, owner: str, key: KeyInfo, status: int = pb.TURN_STATUS_IN_PROGRESS) -> str:
        store = SessionStore(self.sessions)
        store.owner = owner
        session = store.create_session(
            f"s-{owner}-{status}", key.id, Place("w-" + owner, "h-" + owner, None), "m"
        )
        turn = Turn(
            id=f"t-{owner}-{status}",
            session_id=session.id,
            model="m",
            status=TurnStatus.IN_PROGRESS,
            created_at=int(datetime.now(UTC).timestamp()),
        )
        store.start_turn(turn, key.id, True, "/v1/responses", "req-" + owner)
        # Claude Code reported some usage before the core died.
        turn.usage = Usage(input_tokens=40, output_tokens=2)
        store.save_progress(turn)
        if status != pb.TURN_STATUS_IN_PROGRESS:
            turn.status = convert.status_from_pb(status)  # type: ignore[arg-type]
            store.finish_turn(turn, None, None)
        return turn.id

    def lease(self, owner: str, key: KeyInfo) -> None:
        gate = LimitGate(make_engine(self.url), self.sessions, owner=owner)
        gate.admit(key)

    def status(self, turn_id: str) -> pb.Turn:
        with self.sessions() as db:
            row = db.get(TurnRecord, turn_id)
            assert row is not None
            turn = convert.turn_to_pb(codec.turn_from_json(row.turn_json))
            assert row.status == turn.status
            return turn

    def log_rows(self, turn_id: str) -> list[RequestLogRecord]:
        with self.sessions() as db:
            return list(
                db.scalars(select(RequestLogRecord).where(RequestLogRecord.turn_id == turn_id))
            )

    def leases_of(self, owner: str) -> int:
        with self.sessions() as db:
            return len(db.scalars(select(TurnLease).where(TurnLease.owner == owner)).all())

    def tokens_counted(self, key: KeyInfo) -> int:
        return LimitGate(make_engine(self.url), self.sessions).usage_last_day()[key.id][1]

    def instances(self) -> set[str]:
        with self.sessions() as db:
            return set(db.scalars(select(CoreInstance.id)).all())


@pytest.fixture
def cluster(migrated_url: str, sessions: sessionmaker[Session], tmp_path: Path) -> Cluster:
    return Cluster(migrated_url, sessions, tmp_path / "journals")


def test_only_turns_of_dead_cores_are_recovered(
    cluster: Cluster, key: KeyInfo, alive_pid: int, dead_pid: int
) -> None:
    here = _place()
    live = Instance("core_live", here, alive_pid)
    killed = Instance("core_killed", here, dead_pid)
    remote_live = Instance("core_remote_live", "other-host/x/1", 4242)
    remote_silent = Instance("core_remote_silent", "other-host/x/1", 4243)
    cluster.core(live)
    cluster.core(killed)
    cluster.core(remote_live, seen_ago=timedelta(seconds=5))
    cluster.core(remote_silent, seen_ago=timedelta(minutes=5))
    turns = {i.id: cluster.turn(i.id, key) for i in (live, killed, remote_live, remote_silent)}
    cluster.lease(live.id, key)
    cluster.lease(killed.id, key)

    me = Instance("core_me", here, alive_pid + 100_000)
    cluster.core(me)
    done = cluster.recovery(me).recover()

    assert done.turns == 2 and done.instances == 2 and done.leases == 1
    for running in (live, remote_live):
        assert cluster.status(turns[running.id]).status == pb.TURN_STATUS_IN_PROGRESS
        assert cluster.log_rows(turns[running.id]) == []
    for dead in (killed, remote_silent):
        turn = cluster.status(turns[dead.id])
        assert turn.status == pb.TURN_STATUS_FAILED
        assert turn.error.reason == "interrupted"
        (row,) = cluster.log_rows(turns[dead.id])
        assert row.outcome == "error" and row.status == 503
        assert row.input_tokens == 40 and row.output_tokens == 2
        assert row.endpoint == "/v1/responses" and row.request_id == f"req-{dead.id}"
        assert row.key_name == "recovery"
    assert cluster.leases_of(killed.id) == 0 and cluster.leases_of(live.id) == 1
    assert cluster.instances() == {live.id, remote_live.id, me.id}

    # The session moves on past the interrupted turn, its usage counted.
    session_id = cluster.status(turns[killed.id]).session_id
    session = SessionStore(cluster.sessions).get_session(key.id, session_id)
    assert session is not None
    assert session.last_turn_id == turns[killed.id] and session.input_tokens == 40

    # Its tokens count against the key's per-minute limit.
    assert cluster.tokens_counted(key) == 2 * 42

    # Nothing is done twice.
    assert cluster.recovery(me).recover().turns == 0
    assert len(cluster.log_rows(turns[killed.id])) == 1


def test_two_cores_recovering_at_once_write_each_row_once(
    cluster: Cluster, key: KeyInfo, dead_pid: int
) -> None:
    here = _place()
    killed = Instance("core_killed", here, dead_pid)
    cluster.core(killed)
    turn_id = cluster.turn(killed.id, key)
    finished = cluster.turn(killed.id, key, status=pb.TURN_STATUS_COMPLETED)
    recoverers = [cluster.recovery(Instance(f"core_r{n}", here, 1_000_000 + n)) for n in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(recovery: Recovery) -> None:
        barrier.wait()
        try:
            recovery.recover()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(r,)) for r in recoverers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert cluster.status(turn_id).status == pb.TURN_STATUS_FAILED
    assert len(cluster.log_rows(turn_id)) == 1
    # The turn that finished but was never logged gets its row, once.
    (row,) = cluster.log_rows(finished)
    assert row.outcome == "ok" and row.status == 200 and row.input_tokens == 40


def test_a_dead_cores_journal_is_replayed_once(
    cluster: Cluster, key: KeyInfo, dead_pid: int
) -> None:
    here = _place()
    killed = Instance("core_killed", here, dead_pid)
    cluster.core(killed)
    journal = Journal(cluster.journals, killed.id)
    writer = RequestLogWriter(cluster.sessions, journal=journal)
    # Accepted, journaled, never written: the core died before its batch.
    for n in range(3):
        writer.submit(LogEntry(key_id=key.id, request_id=f"journaled-{n}", endpoint="/v1/models"))
    assert writer.pending == 3

    done = cluster.recovery(Instance("core_me", here, dead_pid + 1)).recover()
    assert done.log_rows == 3
    with cluster.sessions() as db:
        ids = set(db.scalars(select(RequestLogRecord.request_id)).all())
    assert {f"journaled-{n}" for n in range(3)} <= ids
    assert list(cluster.journals.glob("*.jsonl")) == []


def test_this_cores_lost_turn_is_failed_after_two_passes(
    cluster: Cluster, key: KeyInfo, alive_pid: int
) -> None:
    me = Instance("core_me", _place(), alive_pid)
    cluster.core(me)
    lost = cluster.turn(me.id, key)
    running = cluster.turn(me.id + "x", key)  # another owner: not ours to judge
    recovery = cluster.recovery(me)
    assert recovery.heal_own(set()) == 0  # seen once: it may be starting
    assert cluster.status(lost).status == pb.TURN_STATUS_IN_PROGRESS
    assert recovery.heal_own(set()) == 1
    assert cluster.status(lost).status == pb.TURN_STATUS_FAILED
    assert cluster.status(running).status == pb.TURN_STATUS_IN_PROGRESS
    # A turn that is running is never failed, however often it is seen.
    busy = cluster.turn(me.id, key, status=pb.TURN_STATUS_CANCELLED)
    with cluster.sessions.begin() as db:
        db.execute(
            update(TurnRecord)
            .where(TurnRecord.id == busy)
            .values(status=pb.TURN_STATUS_IN_PROGRESS)
        )
    for _ in range(3):
        assert recovery.heal_own({busy}) == 0
