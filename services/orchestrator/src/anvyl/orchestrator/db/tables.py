"""The tables: tasks, their events, workspaces, agents, user settings, and known hosts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # The claim scans queued tasks in (created_at, id) order: both in the index, no sort.
        Index("ix_tasks_status_created_at_id", "status", "created_at", "id"),
        # The claim's "is this workspace busy / has it an earlier queued task" probes.
        Index("ix_tasks_workspace_status_created_at", "workspace_id", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(24))
    query: Mapped[str] = mapped_column(Text)
    repo_url: Mapped[str | None] = mapped_column(Text)
    workspace_id: Mapped[str | None] = mapped_column(String(128))
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # "metadata" is reserved by SQLAlchemy's declarative base, hence the attribute name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The seq of the task's last event: appending advances it (UPDATE ... RETURNING), which also
    # locks the row, so a task's events are numbered without gaps across processes.
    event_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Queue: the process running a task holds a lease it renews; an expired lease means its orchestrator died.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    timeout_s: Mapped[float | None] = mapped_column(Float)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class TaskEvent(Base):
    __tablename__ = "task_events"
    __table_args__ = (Index("ix_task_events_task_seq", "task_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    repo_url: Mapped[str] = mapped_column(Text)
    backend: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    """A named agent profile (agents/store.py owns it). Its keys are stored encrypted only."""

    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str | None] = mapped_column(Text)
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    # [{provider, model, base_url, api_key_encrypted}], tried in this order after the provider.
    backups: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    repo_url: Mapped[str | None] = mapped_column(Text)
    max_steps: Mapped[int | None] = mapped_column(Integer)
    timeout_s: Mapped[float | None] = mapped_column(Float)
    workspace_id: Mapped[str] = mapped_column(String(128))
    # created, running or stopped as last set by start/stop (a dead worker reads as stopped).
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSettingsRow(Base):
    """A user's defaults (user_settings/store.py owns it); one row per user, "default" today."""

    __tablename__ = "user_settings"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    default_model: Mapped[str | None] = mapped_column(String(200))
    default_agent: Mapped[str | None] = mapped_column(String(63))
    preference: Mapped[str] = mapped_column(String(8))  # local, online or auto
    rag_archives: Mapped[list[str]] = mapped_column(JSON, default=list)
    memory_enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSettingsChange(Base):
    """One changed field of a user's settings: when, from what to what, through which API key (a
    fingerprint of it, never the key)."""

    __tablename__ = "user_settings_changes"
    __table_args__ = (Index("ix_user_settings_changes_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    api_key: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Host(Base):
    """Another Anvyl orchestrator (or an A2A agent) this one knows (hosts/store.py owns it).

    Its bearer token is stored encrypted only; the status columns are the periodic check's."""

    __tablename__ = "hosts"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="anvyl", server_default="anvyl")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    # unknown (not checked yet), online or offline, as the last check found it.
    status: Mapped[str] = mapped_column(String(16), default="unknown", server_default="unknown")
    last_seen: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]
    latency_ms: Mapped[float | None] = mapped_column(Float)
    version: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)


# The memory tables register on Base.metadata (migrations compare against it).
from anvyl.orchestrator.memory import tables as _memory_tables  # noqa: E402, F401
