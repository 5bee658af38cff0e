"""SQLAlchemy 2 models. Schema changes go through an Alembic migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """An API key. Only a hash of the secret is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Shown in listings so people can tell keys apart ("sk-cc-AbCd...").
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Limits; 0 means unlimited.
    rpm: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tpm: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_concurrent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    budget_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # "day", "month" or "total".
    budget_period: Mapped[str] = mapped_column(String(8), default="month", server_default="month")
    # JSON lists; empty means "all models" / "the service default tools".
    allowed_models: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    allowed_tools: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # Built-ins offered beside a request's client tools when it does not say:
    # JSON false (none), true (all its tools) or a list of names.
    builtin_tools_default: Mapped[str] = mapped_column(
        Text, default="false", server_default="false"
    )
    # Not a count: every concurrency admission writes this row (leaving the
    # value as it is) to lock it, so admissions of one key take turns.
    active_turns: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Spend in the current budget period, and when that period started.
    spent_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    spent_total_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RateWindow(Base):
    """Requests and tokens of one key in one minute window."""

    __tablename__ = "rate_windows"

    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    # Unix minute (seconds // 60).
    window: Mapped[int] = mapped_column(Integer, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)


class TurnLease(Base):
    """A concurrency slot held by a running turn. Its holder renews it while
    the turn runs, so a slot held by a crashed process frees itself."""

    __tablename__ = "turn_leases"
    __table_args__ = (Index("ix_turn_leases_key_expires", "key_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The core instance holding it: freed at once when that instance is found dead.
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True)


class RequestLogRecord(Base):
    """One API request. Written in batches off the request path."""

    __tablename__ = "request_logs"
    __table_args__ = (
        Index("ix_request_logs_time", "time_ms"),
        Index("ix_request_logs_key_time", "key_id", "time_ms"),
        Index("ix_request_logs_model_time", "model", "time_ms"),
        Index("ix_request_logs_turn", "turn_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    time_ms: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(32), default="")
    key_name: Mapped[str] = mapped_column(String(200), default="")
    endpoint: Mapped[str] = mapped_column(String(200), default="")
    model: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[int] = mapped_column(Integer, default=200)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    ttft_ms: Mapped[int] = mapped_column(Integer, default=0)
    queue_ms: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    session_id: Mapped[str] = mapped_column(String(64), default="")
    turn_id: Mapped[str] = mapped_column(String(64), default="")
    tools_used: Mapped[str] = mapped_column(Text, default="[]")
    files_changed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    request_id: Mapped[str] = mapped_column(String(100), default="")
    request_body: Mapped[str] = mapped_column(Text, default="")
    response_body: Mapped[str] = mapped_column(Text, default="")
    trace_id: Mapped[str] = mapped_column(String(32), default="")


class ConfigVersion(Base):
    """One version of the live configuration; the newest row applies."""

    __tablename__ = "config_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_json: Mapped[str] = mapped_column(Text)
    changed_fields: Mapped[str] = mapped_column(Text, default="[]")
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdminUser(Base):
    """An admin-site user; the password is kept as an argon2 hash."""

    __tablename__ = "admin_users"

    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # What the user's admin-site sign-ins carry; replaced to end them all.
    sign_in_token: Mapped[str] = mapped_column(String(64), default="", server_default="")


class LoginFailure(Base):
    """A failed sign-in, for throttling by user and by address."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_user", "username", "time"),
        Index("ix_login_failures_address", "address", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(100))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgentUid(Base):
    """One row per uid handed to a conversation (the id is the uid): the
    primary key keeps uids unique across every core process sharing the
    database."""

    __tablename__ = "agent_uids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionRecord(Base):
    """A conversation: one Claude Code session and its workspace."""

    __tablename__ = "sessions"

    # Equal to Claude Code's own session id.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    # Random directory names, not derived from the id, so an agent that learns
    # a session id cannot find that session's files.
    workspace: Mapped[str] = mapped_column(String(64))
    home: Mapped[str] = mapped_column(String(64))
    uid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_active_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    last_turn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    forked_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Hash of the conversation so far, as a chat client would resend it.
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    # Claude Code's running cost total for the session as it last reported it
    # (it restores it on resume and fork): a turn's cost is the rise from it.
    reported_cost_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class TurnRecord(Base):
    """One turn. The whole turn (core_service/domain/turn.py) is kept as JSON in
    `turn_json`; the columns beside it are what queries need."""

    __tablename__ = "turns"
    __table_args__ = (Index("ix_turns_key_created", "key_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    parent_turn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # core_service.store.STATUS_CODES.
    status: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stored: Mapped[bool] = mapped_column(Boolean, default=True)
    turn_json: Mapped[str] = mapped_column(Text)
    # Claude Code's uuid of the last assistant message, for forking at this turn.
    resume_at: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The core instance running it; crash recovery finishes the turns of dead ones.
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    # The request that started it, for the request-log row recovery writes.
    endpoint: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(100), nullable=True)


class CoreInstance(Base):
    """A running core process, kept alive by its heartbeat. Turns and leases
    name their instance, so a core can tell a turn a live replica is running
    from one a dead core left behind."""

    __tablename__ = "core_instances"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FileRecord(Base):
    """A file a key uploaded. The bytes live on disk (see core_service/file_store.py)."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_key_created", "key_id", "created_at"),)

    # "file-" + random characters; also the name of the bytes on disk.
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    media_type: Mapped[str] = mapped_column(String(255), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # The client's own expiry (expires_after); None: only the live retention applies.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AttachmentRecord(Base):
    """A file a client attached to a turn, written into the session's workspace
    (core_service/turns/attachments.py); the admin site lists them apart from
    the agent's own files."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    turn_id: Mapped[str] = mapped_column(String(64))
    # The name in the workspace (a plain file name; see attachments.check_name).
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(255), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # The uploaded file it came from; "" for inline file_data.
    file_id: Mapped[str] = mapped_column(String(40), default="")
    attached_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BackgroundTurnRecord(Base):
    """A turn started in background mode (core_service/turns/background.py):
    who owns it, where its event journal stands, and the turn as it looked
    before it had a session (GetTurn shows it while it waits for a slot)."""

    __tablename__ = "background_turns"

    turn_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    # The core instance running it; a background turn whose owner is gone is failed.
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    # claudecode.v1.TurnStatus of the job: QUEUED, IN_PROGRESS, or how it ended.
    status: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When its last event was journaled; the retention clock starts here.
    ended_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    # The turn before it got its session (the domain Turn as JSON, domain.codec).
    turn_json: Mapped[str] = mapped_column(Text)
    # Events journaled so far (the next event's index).
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    # A cancel reached another core: the owner sees it and stops the turn.
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class BackgroundEventRecord(Base):
    """One journaled event of a background turn, in order (index from 0)."""

    __tablename__ = "background_events"

    turn_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    # 0: an event; 1: the journal was full here (no payload); 2: the last event.
    kind: Mapped[int] = mapped_column(Integer, default=0)
    # The claudecode.v1.RunTurnResponse as it was streamed, serialized: the
    # journal replays the wire stream itself, byte for byte, so every replay
    # numbers and renders its events as the first stream did.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
