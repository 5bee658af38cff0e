"""Concurrency slots are leases: exact under parallel admissions, returned on
release, and freed on their own when the holder stops renewing them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.engine import make_engine
from core_service.db.models import TurnLease
from core_service.errors import ResourceExhausted
from core_service.keys import KeyInfo, KeyLimits, KeySpec, KeyStore
from core_service.limits import Admission, LimitGate


@pytest.fixture
def gate_and_key(migrated_url: str, sessions: sessionmaker[Session]) -> tuple[LimitGate, KeyInfo]:
    keys = KeyStore(sessions)
    key, _ = keys.create("leases", spec=KeySpec(name="leases", limits=KeyLimits(max_concurrent=3)))
    return LimitGate(make_engine(migrated_url), sessions), key


def test_parallel_admissions_get_exactly_the_limit(gate_and_key: tuple[LimitGate, KeyInfo]) -> None:
    gate, key = gate_and_key
    admitted: list[Admission] = []
    refused: list[ResourceExhausted] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            admission = gate.admit(key)
        except ResourceExhausted as error:
            with lock:
                refused.append(error)
        else:
            with lock:
                admitted.append(admission)

    threads = [threading.Thread(target=one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(admitted) == 3 and len(refused) == 9
    gate.release(admitted[0], 0, 0.0)
    gate.admit(key)


def test_a_lease_nobody_renews_frees_its_slot(
    gate_and_key: tuple[LimitGate, KeyInfo], sessions: sessionmaker[Session]
) -> None:
    gate, key = gate_and_key
    held = [gate.admit(key) for _ in range(3)]
    with pytest.raises(ResourceExhausted):
        gate.admit(key)
    gate.renew_leases()
    with pytest.raises(ResourceExhausted):
        gate.admit(key)
    # The holder crashed: its leases are not renewed and run out.
    with sessions.begin() as db:
        db.execute(
            update(TurnLease)
            .where(TurnLease.id == held[0].lease)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    gate.admit(key)
