"""SQLAlchemy 2 models. Schema changes go through an Alembic migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
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


class AgentUid(Base):
    """One row per uid handed to a conversation; the id makes uids unique
    across every core process sharing the database."""

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
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class TurnRecord(Base):
    """One turn. The full claudecode.v1.Turn is kept serialized in `snapshot`."""

    __tablename__ = "turns"
    __table_args__ = (Index("ix_turns_key_created", "key_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    parent_turn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stored: Mapped[bool] = mapped_column(Boolean, default=True)
    snapshot: Mapped[bytes] = mapped_column(LargeBinary)
    # Claude Code's uuid of the last assistant message, for forking at this turn.
    resume_at: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(Text, nullable=True)
