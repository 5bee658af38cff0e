"""`ccapi serve`: runs the parts as child processes, restarts one that dies,
and stops them together.

Each part runs in its own process group, so when it is gone any Claude Code
process it left behind is killed with its group: nothing is orphaned. A part
that dies is started again after a pause that doubles while it keeps dying
soon after starting (up to MAX_BACKOFF_SECONDS), and starts from the shortest
pause again once it has run for STABLE_SECONDS. The other parts keep running:
while the core is down the HTTP facade answers 503 with Retry-After.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from core_service.config import CoreConfig

log = logging.getLogger("ccapi.serve")

POLL_SECONDS = 0.2
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
# A part that ran this long before dying was not crash-looping.
STABLE_SECONDS = 60.0


@dataclass
class Part:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    # When a dead part is due to start again (0: not waiting).
    restart_at: float = 0.0
    backoff: float = FIRST_BACKOFF_SECONDS
    restarts: int = 0

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(self.argv, start_new_session=True, env=env)
        self.started_at = time.monotonic()
        self.restart_at = 0.0
        log.info("started part", extra={"part": self.name, "pid": self.process.pid})

    def died(self, now: float) -> None:
        """Records the death of the part's process and schedules its restart."""
        assert self.process is not None
        code = self.process.returncode
        # Claude Code processes of a killed core are in its group: end them.
        kill_group(self.process.pid)
        if now - self.started_at >= STABLE_SECONDS:
            self.backoff = FIRST_BACKOFF_SECONDS
        delay = self.backoff
        self.backoff = min(MAX_BACKOFF_SECONDS, self.backoff * 2)
        self.restart_at = now + delay
        self.restarts += 1
        log.error(
            "part exited; restarting it",
            extra={
                "part": self.name,
                "code": code,
                "ran_seconds": round(now - self.started_at, 1),
                "restart_in_seconds": delay,
                "restarts": self.restarts,
            },
        )


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def parts() -> list[Part]:
    """The core, the HTTP API and the admin site, each its own `ccapi` process."""
    return [
        Part(name, [sys.executable, "-m", "core_service.cli", name])
        for name in ("core", "http", "admin")
    ]


def bootstrap(config: CoreConfig) -> str:
    """Migrates, and on an empty database creates the `admin` user and a first
    API key, printing both once. Returns the admin token the parts share."""
    from core_service.config import admin_token_path
    from core_service.db.engine import make_engine, make_sessionmaker
    from core_service.db.migrations import upgrade
    from core_service.keys import KeyStore
    from core_service.users import UserStore

    config.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(config.database_url)
    engine = make_engine(config.database_url)
    db = make_sessionmaker(engine)
    keys, users = KeyStore(db), UserStore(db)
    if users.count() == 0:
        password = secrets.token_urlsafe(12)
        users.create("admin", "admin", password, must_change=True)
        print("First start: admin site user 'admin' created; its password (shown once,")
        print("to be changed at first sign-in):")
        print(password, flush=True)
    if keys.count() == 0:
        info, secret = keys.create("default")
        print(f"First start: created API key {info.id}. It is shown only this once:", flush=True)
        print(secret, flush=True)
    engine.dispose()
    token = config.admin_token
    if not token:
        token = secrets.token_urlsafe(32)
        path = admin_token_path(config.data_dir)
        path.touch(mode=0o600)
        path.write_text(token)
    return token


def run_all(config: CoreConfig) -> int:
    admin_token = bootstrap(config)
    env = {**os.environ, "CCAPI_ADMIN_TOKEN": admin_token}
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    running = parts()
    for part in running:
        part.start(env)
    while not stopping:
        time.sleep(POLL_SECONDS)
        now = time.monotonic()
        for part in running:
            if stopping:
                break
            assert part.process is not None
            if part.restart_at:
                if now >= part.restart_at:
                    part.start(env)
            elif part.process.poll() is not None:
                part.died(now)
    stop_parts(running, config.shutdown_grace_seconds + 5)
    return 0


def stop_parts(running: list[Part], timeout: float) -> None:
    for part in running:
        if part.process is not None and part.process.poll() is None:
            part.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for part in running:
        if part.process is None:
            continue
        try:
            part.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("part did not stop in time; killing it", extra={"part": part.name})
        # Whatever is left in the part's group (its Claude Code processes) goes too.
        kill_group(part.process.pid)
        part.process.wait()
