"""A core that is stopping keeps its heartbeat until its turns have ended, so
other cores do not take it for dead and recover turns it is still finishing."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import start_core


def _heartbeat(db: str) -> str:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT max(heartbeat_at) FROM core_instances").fetchone()
    return str(row[0])


def test_a_stopping_core_heartbeats_through_its_grace_period(model_double: ModelDouble) -> None:
    core = start_core(model_double.url, CCAPI_SHUTDOWN_GRACE_SECONDS="20")
    try:
        model_double.script(Reply.hang(12))
        turn = threading.Thread(target=run_turn, args=(core, request("a long one")), daemon=True)
        turn.start()
        model_double.wait_for_requests(1, timeout=60)
        db = str(core.data_dir / "ccapi.db")
        core.process.send_signal(signal.SIGTERM)
        at_stop = _heartbeat(db)
        # A heartbeat every 5 s: within 12 s of the signal one more must land,
        # while the turn still runs in the grace period.
        deadline = time.monotonic() + 12
        while _heartbeat(db) == at_stop and time.monotonic() < deadline:
            time.sleep(0.25)
        assert _heartbeat(db) > at_stop, "the heartbeat stopped while turns were still running"
        assert core.process.poll() is None
    finally:
        core.cleanup()  # the turn ends after its 12 s, then the core
