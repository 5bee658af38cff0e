"""The file store on SQLite and PostgreSQL: what a key sees, expiry by the
live retention and by expires_after, the retention pass, and leftovers of
interrupted uploads."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.models import FileRecord
from core_service.errors import InvalidArgument, NotFound, ResourceExhausted
from core_service.file_store import FilePolicy, FileStore, ListQuery, UploadStart
from core_service.keys import KeyStore


@pytest.fixture
def policy() -> list[FilePolicy]:
    return [FilePolicy(max_bytes=1000, retention_days=30)]


@pytest.fixture
def store(sessions: sessionmaker[Session], tmp_path: Path, policy: list[FilePolicy]) -> FileStore:
    files = FileStore(sessions, tmp_path / "files", lambda: policy[0])
    files.prepare()
    return files


@pytest.fixture
def key_ids(sessions: sessionmaker[Session]) -> tuple[str, str]:
    keys = KeyStore(sessions)
    return keys.create("a")[0].id, keys.create("b")[0].id


def _put(
    store: FileStore, key_id: str, data: bytes, name: str = "a.txt", expires_after_seconds: int = 0
) -> str:
    start = UploadStart(name, "user_data", expires_after_seconds=expires_after_seconds)
    upload = store.begin(key_id, start)
    upload.write(data)
    return upload.finish(len(data)).id


def test_a_key_sees_only_its_own_files(store: FileStore, key_ids: tuple[str, str]) -> None:
    a, b = key_ids
    file_id = _put(store, a, b"hello", name="C:\\Users\\me\\notes.txt")
    stored = store.get(a, file_id)
    assert (stored.filename, stored.bytes) == ("notes.txt", 5)
    assert len(stored.sha256) == 64
    with pytest.raises(NotFound):
        store.get(b, file_id)
    with pytest.raises(NotFound):
        store.delete(b, file_id)
    assert store.list(b, ListQuery()) == ([], False)
    _, handle = store.open_content(a, file_id)
    with handle:
        assert handle.read() == b"hello"
    store.delete(a, file_id)
    assert not (store.root / file_id).exists()


def test_limits_and_bad_metadata(
    store: FileStore, key_ids: tuple[str, str], policy: list[FilePolicy]
) -> None:
    a, _ = key_ids
    upload = store.begin(a, UploadStart(filename="big.bin", purpose="assistants"))
    upload.write(b"x" * 1000)
    with pytest.raises(ResourceExhausted):
        upload.write(b"x")
    assert not list(store.incoming.iterdir())
    # The live limit applies to the next upload at once.
    policy[0] = FilePolicy(max_bytes=2000, retention_days=30)
    assert store.get(a, _put(store, a, b"x" * 1500)).bytes == 1500
    with pytest.raises(ResourceExhausted):
        store.begin(a, UploadStart("b", "assistants", declared_body_bytes=10_000_000))
    for bad in ("", "..", "a\x00b", "x" * 300):
        with pytest.raises(InvalidArgument):
            store.begin(a, UploadStart(filename=bad, purpose="assistants"))
    with pytest.raises(InvalidArgument, match="not supported"):
        store.begin(a, UploadStart(filename="b.jsonl", purpose="fine-tune"))
    with pytest.raises(InvalidArgument):
        store.begin(a, UploadStart("b", "assistants", expires_after_seconds=60))
    cut = store.begin(a, UploadStart(filename="cut.txt", purpose="assistants"))
    cut.write(b"abc")
    with pytest.raises(InvalidArgument, match="cut short"):
        cut.finish(10)
    assert not list(store.incoming.iterdir())


def test_expiry_hides_and_the_retention_pass_deletes(
    store: FileStore,
    key_ids: tuple[str, str],
    sessions: sessionmaker[Session],
    policy: list[FilePolicy],
) -> None:
    a, _ = key_ids
    old = _put(store, a, b"old")
    soon = _put(store, a, b"soon", expires_after_seconds=3600)
    fresh = _put(store, a, b"fresh")
    assert store.get(a, soon).expires_at == store.get(a, soon).created_at + 3600
    with sessions.begin() as db:
        db.execute(
            update(FileRecord)
            .where(FileRecord.id == old)
            .values(created_at=datetime.now(UTC) - timedelta(days=10))
        )
        db.execute(
            update(FileRecord)
            .where(FileRecord.id == soon)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert [f.id for f in store.list(a, ListQuery())[0]] == [fresh, old]
    with pytest.raises(NotFound):
        store.get(a, soon)
    # Retention is live: shortening it hides the old file at once.
    policy[0] = FilePolicy(max_bytes=1000, retention_days=5)
    assert [f.id for f in store.list(a, ListQuery())[0]] == [fresh]
    assert store.purge_expired() == 2
    assert not (store.root / old).exists() and not (store.root / soon).exists()
    assert (store.root / fresh).exists()


def test_the_retention_pass_sweeps_interrupted_uploads(
    store: FileStore, key_ids: tuple[str, str]
) -> None:
    a, _ = key_ids
    kept = _put(store, a, b"kept")
    stale_part = store.incoming / "file-x.part"
    stale_part.write_bytes(b"partial")
    orphan = store.root / "file-orphan"
    orphan.write_bytes(b"no row")
    recent_orphan = store.root / "file-recent"
    recent_orphan.write_bytes(b"being stored right now")
    day_ago = time.time() - 2 * 86400
    for path in (stale_part, orphan, store.root / kept):
        os.utime(path, (day_ago, day_ago))
    store.purge_expired()
    assert not stale_part.exists() and not orphan.exists()
    assert recent_orphan.exists() and (store.root / kept).exists()


def test_pages_in_both_orders(store: FileStore, key_ids: tuple[str, str]) -> None:
    a, _ = key_ids
    ids = [_put(store, a, b"p") for _ in range(4)]
    page, more = store.list(a, ListQuery(order="asc", limit=2))
    assert [f.id for f in page] == ids[:2] and more
    page, more = store.list(a, ListQuery(order="asc", limit=2, after=ids[1]))
    assert [f.id for f in page] == ids[2:] and not more
    page, _ = store.list(a, ListQuery(limit=3, after=ids[3]))
    assert [f.id for f in page] == ids[2::-1]
    with pytest.raises(InvalidArgument):
        store.list(a, ListQuery(after="file-unknown"))
