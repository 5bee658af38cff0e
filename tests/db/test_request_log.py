"""Request logs: redaction, the batched writer, paged listing, retention."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.engine import make_engine, make_sessionmaker
from core_service.db.models import RequestLogRecord
from core_service.request_log import (
    LogEntry,
    LogFilters,
    RequestLogQuery,
    RequestLogWriter,
    new_log_id,
    prepare_body,
    redact,
    to_proto,
    truncate,
)

OUR_KEY = "sk-cc-Zk3pQ9vL2mN8xR4tY7wB1cD5eF6gH0jK"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"


def _count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(RequestLogRecord)) or 0)


# -- redaction and truncation (no database) -----------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f'{{"api_key": "{OUR_KEY}"}}', OUR_KEY),
        (f"key {OUR_KEY} in prose", OUR_KEY[6:]),
        ("Authorization: Bearer " + BEARER, BEARER),
        ("x-api-key: sk-ant-api03-AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
        ("OPENAI_API_KEY=sk-proj-abcdefghijklmnop123", "abcdefghijklmnop123"),
        ('{"password": "hunter2 with \\"quotes\\""}', "hunter2"),
        ('{"messages": "{\\"client_secret\\": \\"s3cr3t-value\\"}"}', "s3cr3t-value"),
        ("user=bob&password=correct-horse&x=1", "correct-horse"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n"
            "-----END OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjEAAAA",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA cut off", "MIIEowIBAAKCAQEA"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghij"),
    ],
)
def test_redact_masks_secrets(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert "[REDACTED" in out


@pytest.mark.parametrize(
    "text",
    [
        '{"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true}',
        "max_tokens: 4096",
        "the task-runner uses sk-learn",
        '{"usage": {"input_tokens": 10, "output_tokens": 5}}',
    ],
)
def test_redact_leaves_ordinary_text(text: str) -> None:
    assert redact(text) == text


def test_truncate_notes_the_cut() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("x" * 100, -1) == "x" * 100
    out = truncate("abcdefghij" * 10, 20)
    assert out.startswith("abcdefghijabcdefghij…")
    assert "truncated to 20 of 100 characters" in out


def test_prepare_body_redacts_a_secret_straddling_the_limit() -> None:
    body = "a" * 95 + " " + OUR_KEY + " tail"
    out = prepare_body(body, 100)
    assert OUR_KEY[6:10] not in out
    assert "truncated to 100 of" in out
    assert prepare_body("", 10) == ""
    assert OUR_KEY not in prepare_body(OUR_KEY, -1)


def test_log_ids_sort_by_time() -> None:
    ids = [new_log_id(t) for t in (1, 2, 1_700_000_000_000, 1_800_000_000_000)]
    assert ids == sorted(ids)
    assert all(len(i) <= 40 for i in ids)
    entry = LogEntry()
    assert entry.id.startswith("log_") and entry.time_ms > 0


# -- the writer ----------------------------------------------------------------


async def test_concurrent_submits_all_land_and_close_flushes(
    sessions: sessionmaker[Session],
) -> None:
    writer = RequestLogWriter(sessions, batch_size=50, flush_interval=0.05)
    writer.start()

    async def client(n: int) -> None:
        for i in range(40):
            writer.submit(
                LogEntry(key_id=f"key_{n}", endpoint="/v1/chat/completions", turn_id=str(i))
            )
            if i % 7 == 0:
                await asyncio.sleep(0)

    def thread_client(n: int) -> None:
        for i in range(40):
            writer.submit(LogEntry(key_id=f"thread_{n}", turn_id=str(i)))

    threads = [threading.Thread(target=thread_client, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(client(n) for n in range(25)))
    for thread in threads:
        thread.join()
    await writer.close()

    assert writer.pending == 0
    assert writer.stats.submitted == 30 * 40
    assert writer.stats.written == 30 * 40
    assert writer.stats.dropped_queue == writer.stats.dropped_db == 0
    assert _count(sessions) == 30 * 40
    with sessions() as session:
        per_key = dict(
            session.execute(
                sa.select(RequestLogRecord.key_id, sa.func.count()).group_by(
                    RequestLogRecord.key_id
                )
            ).all()
        )
    assert set(per_key.values()) == {40}
    # Closed: later entries are refused (counted), never raised.
    writer.submit(LogEntry())
    assert writer.stats.dropped_queue == 1


async def test_close_without_start_and_with_a_long_interval_writes_everything(
    sessions: sessionmaker[Session],
) -> None:
    writer = RequestLogWriter(sessions, batch_size=1000, flush_interval=60)
    writer.start()
    for i in range(7):
        writer.submit(LogEntry(request_id=f"r{i}"))
    await asyncio.sleep(0.05)
    assert _count(sessions) == 0  # still queued: below the batch size, interval far away
    await writer.close()
    assert _count(sessions) == 7

    unstarted = RequestLogWriter(sessions)
    unstarted.submit(LogEntry())
    await unstarted.close()
    assert _count(sessions) == 8


async def test_flush_writes_what_was_submitted(sessions: sessionmaker[Session]) -> None:
    writer = RequestLogWriter(sessions, batch_size=3, flush_interval=60)
    writer.start()
    for _ in range(10):
        writer.submit(LogEntry())
    await writer.flush()
    assert _count(sessions) == 10
    await writer.close()


async def test_full_queue_drops_and_counts(sessions: sessionmaker[Session]) -> None:
    writer = RequestLogWriter(sessions, batch_size=100, flush_interval=60, max_queue=5)
    for _ in range(8):
        writer.submit(LogEntry())
    assert writer.stats.dropped_queue == 3
    await writer.close()
    assert _count(sessions) == 5


async def test_database_errors_are_retried_then_dropped_without_raising(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # No request_logs table: every insert fails.
    url = f"sqlite:///{tmp_path_factory.mktemp('broken') / 'empty.db'}"
    engine = make_engine(url)
    try:
        writer = RequestLogWriter(
            make_sessionmaker(engine), batch_size=4, flush_interval=0.01, retry_delay=0.001
        )
        writer.start()
        for _ in range(10):
            writer.submit(LogEntry())
        await writer.close()
        assert writer.stats.dropped_db == 10
        assert writer.stats.written == 0
        assert writer.stats.failed_batches == 3
        assert writer.stats.retries >= 3
    finally:
        engine.dispose()


async def test_a_bad_row_does_not_lose_its_batch(sessions: sessionmaker[Session]) -> None:
    writer = RequestLogWriter(sessions, batch_size=10, flush_interval=60)
    writer.submit(LogEntry(id="log_dup"))
    await writer.flush()
    for i in range(5):
        writer.submit(LogEntry(request_id=f"ok{i}"))
    writer.submit(LogEntry(id="log_dup"))
    await writer.close()
    assert writer.stats.written == 6
    assert writer.stats.dropped_db == 1
    assert _count(sessions) == 6


async def test_stored_bodies_never_contain_secrets(sessions: sessionmaker[Session]) -> None:
    writer = RequestLogWriter(sessions, body_limit=2000)
    body = (
        '{"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": '
        f'"my key is {OUR_KEY}"}}], "api_key": "{OUR_KEY}"}}'
    )
    headers = (
        f"POST /v1/chat/completions\nAuthorization: Bearer {OUR_KEY}\nX-Other: Bearer {BEARER}"
    )
    entry = LogEntry(
        request_body=body + "\n" + headers + "\n" + "x" * 5000,
        response_body=f"I saw {OUR_KEY} and Bearer {BEARER}",
        error=f"auth failed for {OUR_KEY}",
        tools_used=["Read", "Bash"],
    )
    writer.submit(entry)
    await writer.close()
    with sessions() as session:
        raw = session.execute(
            sa.text("SELECT request_body, response_body, error, tools_used FROM request_logs")
        ).one()
    stored = " ".join(str(v) for v in raw)
    for secret in (OUR_KEY, OUR_KEY[6:], OUR_KEY[6:14], BEARER):
        assert secret not in stored
    assert "claude-sonnet-4-5" in raw[0]
    assert "truncated to 2000 of" in raw[0]
    assert len(raw[0]) < 2100
    assert raw[3] == '["Read", "Bash"]'

    # Bodies off: nothing kept, the rest still logged.
    quiet = RequestLogWriter(sessions, log_bodies=False)
    quiet.submit(LogEntry(id="log_quiet", request_body=body, response_body="hi"))
    await quiet.close()
    row = RequestLogQuery(sessions).get("log_quiet")
    assert row is not None and row.request_body == "" and row.response_body == ""


# -- queries -----------------------------------------------------------------------


def _seed(sessions: sessionmaker[Session]) -> list[LogEntry]:
    """60 entries over keys a/b, models m1/m2, statuses 200/500, with some
    entries sharing a millisecond (the id breaks such ties)."""
    entries = []
    for i in range(60):
        entries.append(
            LogEntry(
                id=f"log_{i:03d}",
                time_ms=1_000_000 + (i // 3) * 1000,  # three entries per timestamp
                key_id="a" if i % 2 else "b",
                model="m1" if i % 3 else "m2",
                status=500 if i % 5 == 0 else 200,
                outcome="error" if i % 5 == 0 else "ok",
                endpoint="/v1/responses" if i % 4 == 0 else "/v1/chat/completions",
                input_tokens=i,
                tools_used=["Read"] if i % 2 else [],
            )
        )
    writer = RequestLogWriter(sessions)
    rows = [writer._row(e) for e in entries]
    with sessions() as session, session.begin():
        session.execute(sa.insert(RequestLogRecord), rows)
    return entries


def _expected(entries: list[LogEntry], filters: LogFilters) -> list[str]:
    def keep(e: LogEntry) -> bool:
        return (
            (not filters.start_time_ms or e.time_ms >= filters.start_time_ms)
            and (not filters.end_time_ms or e.time_ms < filters.end_time_ms)
            and (not filters.key_id or e.key_id == filters.key_id)
            and (not filters.model or e.model == filters.model)
            and (not filters.status or e.status == filters.status)
            and (not filters.endpoint or e.endpoint == filters.endpoint)
            and (not filters.outcome or e.outcome == filters.outcome)
        )

    kept = sorted((e for e in entries if keep(e)), key=lambda e: (e.time_ms, e.id), reverse=True)
    return [e.id for e in kept]


@pytest.mark.parametrize(
    "filters",
    [
        LogFilters(),
        LogFilters(key_id="a"),
        LogFilters(key_id="b", model="m1"),
        LogFilters(status=500),
        LogFilters(outcome="ok", endpoint="/v1/chat/completions"),
        LogFilters(start_time_ms=1_005_000, end_time_ms=1_015_000, key_id="a"),
    ],
    ids=["none", "key", "key+model", "status", "outcome+endpoint", "time+key"],
)
def test_pages_walk_every_match_newest_first(
    sessions: sessionmaker[Session], filters: LogFilters
) -> None:
    entries = _seed(sessions)
    query = RequestLogQuery(sessions)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        rows, token = query.list(filters, 7, token)
        assert len(rows) <= 7
        seen += [r.id for r in rows]
        pages += 1
        if not token:
            break
    expected = _expected(entries, filters)
    assert seen == expected
    assert pages == max(1, -(-len(expected) // 7))


def test_page_size_defaults_and_caps(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    query = RequestLogQuery(sessions)
    rows, token = query.list(LogFilters(), 0, "")
    assert len(rows) == 50 and token
    rows, token = query.list(LogFilters(), 10_000, "")
    assert len(rows) == 60 and token == ""
    with pytest.raises(ValueError):
        query.list(LogFilters(), -1, "")
    with pytest.raises(ValueError):
        query.list(LogFilters(outcome="weird"), 10, "")


def test_a_token_only_works_with_its_filters(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    query = RequestLogQuery(sessions)
    _, token = query.list(LogFilters(key_id="a"), 5, "")
    assert token
    with pytest.raises(ValueError, match="different filters"):
        query.list(LogFilters(key_id="b"), 5, token)
    with pytest.raises(ValueError, match="different filters"):
        query.list(LogFilters(key_id="a", status=200), 5, token)
    # A different page size is fine (AIP-158 allows it).
    rows, _ = query.list(LogFilters(key_id="a"), 3, token)
    assert len(rows) == 3
    for garbage in ("not-a-token", "eyJ0IjoxfQ", "!!!"):
        with pytest.raises(ValueError, match="not valid"):
            query.list(LogFilters(key_id="a"), 5, garbage)


def test_get_and_to_proto(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    query = RequestLogQuery(sessions)
    assert query.get("log_missing") is None
    row = query.get("log_007")
    assert row is not None
    message = to_proto(row)
    assert message.id == "log_007"
    assert message.time_ms == 1_002_000
    assert message.key_id == "a"
    assert message.usage.input_tokens == 7
    assert list(message.tools_used) == ["Read"]
    assert message.outcome == "ok"
    # An entry converts the same way before it is stored.
    entry = LogEntry(id="log_x", ttft_ms=12, cache_read_tokens=3, tools_used=["Bash"], stream=True)
    pending = to_proto(entry)
    assert pending.time_to_first_token_ms == 12
    assert pending.usage.cache_read_input_tokens == 3
    assert list(pending.tools_used) == ["Bash"] and pending.stream


def test_purge_deletes_only_older_entries_in_chunks(sessions: sessionmaker[Session]) -> None:
    entries = _seed(sessions)
    query = RequestLogQuery(sessions)
    cutoff = 1_010_000
    older = sum(1 for e in entries if e.time_ms < cutoff)
    assert query.purge_older_than(cutoff, chunk=4) == older
    assert _count(sessions) == 60 - older
    rows, _ = query.list(LogFilters(), 500, "")
    assert min(r.time_ms for r in rows) == cutoff
    assert query.purge_older_than(cutoff) == 0


async def test_close_flushes_even_after_the_task_was_cancelled(
    sessions: sessionmaker[Session],
) -> None:
    writer = RequestLogWriter(sessions, batch_size=1000, flush_interval=60)
    writer.start()
    for _ in range(5):
        writer.submit(LogEntry())
    assert writer._task is not None
    writer._task.cancel()
    await asyncio.sleep(0)
    await writer.close()
    assert _count(sessions) == 5
