"""A throwaway PostgreSQL server for tests and benchmarks.

`PostgresServer` runs Debian's (or any) PostgreSQL binaries in a temporary
directory on a free loopback port with trust authentication, and removes
everything when stopped. As root the server runs as the `postgres` OS user
(PostgreSQL refuses to run as root).

    with postgres_server() as server:
        url = server.url          # postgresql+psycopg://postgres@127.0.0.1:PORT/ccapi
        other = server.create_database("t1")
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG_USER = "postgres"
DEFAULT_DB = "ccapi"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries (initdb, pg_ctl) were found on this machine."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find_bin_dir() -> Path | None:
    """Where initdb and pg_ctl live: $CCAPI_PG_BIN, the newest Debian cluster
    version, or PATH."""
    env = os.environ.get("CCAPI_PG_BIN")
    if env:
        # An explicit choice is not second-guessed.
        chosen = Path(env)
        return chosen if (chosen / "initdb").is_file() and (chosen / "pg_ctl").is_file() else None
    candidates: list[Path] = []

    def version(path: str) -> tuple[int, ...]:
        found = re.search(r"/postgresql/([\d.]+)/", path)
        return tuple(int(p) for p in found.group(1).split(".")) if found else (0,)

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/"), key=version, reverse=True)
    candidates += [Path(p) for p in debian]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for path in candidates:
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory. Not started until start()."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or find_bin_dir()
        if found is None:
            raise PostgresUnavailable(
                "PostgreSQL binaries (initdb, pg_ctl) not found: install Debian's "
                "`postgresql` package or set CCAPI_PG_BIN"
            )
        self.bin_dir = found
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(PG_USER)
            except KeyError as exc:
                raise PostgresUnavailable(
                    f"running as root, PostgreSQL needs the {PG_USER!r} OS user "
                    "(Debian's `postgresql` package creates it)"
                ) from exc
        self.port = 0
        self.root: Path | None = None
        self._as_postgres = os.geteuid() == 0
        self._started = False

    # -- paths and URLs --------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of one database (psycopg 3 driver)."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(DEFAULT_DB)

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={PG_USER} dbname={database}"

    # -- lifecycle -------------------------------------------------------

    def _run(self, *args: str, timeout: float = 120) -> None:
        assert self.root is not None
        kwargs: dict[str, Any] = {}
        if self._as_postgres:
            kwargs["user"] = PG_USER
            kwargs["group"] = pwd.getpwnam(PG_USER).pw_gid
        out = self.root / "pg_ctl.out"
        # Output goes to a file: the postmaster inherits pg_ctl's descriptors,
        # so a pipe would stay open as long as the server runs.
        with open(out, "ab") as sink:
            done = subprocess.run(
                [str(self.bin_dir / args[0]), *args[1:]],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env={**os.environ, "LC_ALL": "C", "LANG": "C"},
                check=False,
                **kwargs,
            )
        if done.returncode != 0:
            log = out.read_text(errors="replace")
            if self.log_file.exists():
                log += "\n--- server log ---\n" + self.log_file.read_text(errors="replace")
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{log[-4000:]}")

    def start(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="ccapi-pg-", dir="/tmp"))
        if self._as_postgres:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", PG_USER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        # A free port may be taken between probing and binding; try a few.
        last: Exception | None = None
        for _ in range(5):
            self.port = _free_port()
            options = " ".join(
                [
                    f"-p {self.port}",
                    "-c listen_addresses=127.0.0.1",
                    f"-c unix_socket_directories={self.root}",
                    # Throwaway data: durability off, speed on.
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",
                    "-c shared_buffers=128MB",
                    "-c maintenance_work_mem=128MB",
                    "-c work_mem=32MB",
                ]
            )
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                    "-w", "-t", "60", "-o", options, "start",
                )  # fmt: skip
            except RuntimeError as exc:
                last = exc
                continue
            self._started = True
            break
        else:
            self._cleanup_dir()
            raise RuntimeError(f"could not start PostgreSQL: {last}")
        atexit.register(self.stop)
        self.create_database(DEFAULT_DB)
        return self

    def stop(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- databases -------------------------------------------------------

    def _admin(self, sql: str) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                with psycopg.connect(self.dsn(), autocommit=True) as conn:
                    conn.execute(sql.encode())
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        """Creates an empty database and returns its SQLAlchemy URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"bad database name {name!r}")
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drops a database, closing whatever connections remain to it."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"bad database name {name!r}")
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres_server(bin_dir: Path | None = None) -> Iterator[PostgresServer]:
    """A started server, stopped and removed on exit."""
    server = PostgresServer(bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- pytest fixtures ---------------------------------------------------------
# Import them into a conftest.py to use them (tests/db/conftest.py does):
#     from tests.pg import database_url, pg_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session. Skips when the
    binaries are missing, except in CI (CI=true), where that is a failure."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        if in_ci():
            pytest.fail(f"{exc} (CI=true: PostgreSQL tests must run in CI)", pytrace=False)
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database (not migrated) on each engine: a fresh SQLite file,
    or a fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        directory = tmp_path_factory.mktemp("sqlite")
        yield f"sqlite:///{directory / 'ccapi.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)
