"""The memory tables. The full-text indexes live beside them, made by migration 0009 for each
database (an FTS5 table kept by triggers on SQLite; a generated tsvector column with a GIN index on
PostgreSQL): `FTS_OBJECTS` names them so that the model comparison leaves them alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import SchemaItem

from anvyl.orchestrator.db.tables import Base, utcnow

FTS_OBJECTS = frozenset({"memories_fts", "memories_fts_data", "memories_fts_idx",
                         "memories_fts_docsize", "memories_fts_config", "memories_fts_content",
                         "tsv", "ix_memories_tsv"})  # fmt: skip


def not_full_text(name: str | None, *_: Any) -> bool:
    """Alembic's include_name hook: leave the full-text objects out of comparisons."""
    return name not in FTS_OBJECTS


def not_full_text_object(item: SchemaItem, name: str | None, *_: Any) -> bool:
    """Alembic's include_object hook, likewise."""
    return name not in FTS_OBJECTS


class MemoryRow(Base):
    __tablename__ = "memories"
    __table_args__ = (
        Index("ix_memories_workspace_id", "workspace_id"),
        Index("ix_memories_agent", "agent"),
        Index("ix_memories_task_id", "task_id"),
        Index("ix_memories_archive_path", "archive", "path"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # task | archive
    text: Mapped[str] = mapped_column(Text)
    # Indexed for search with the text: an archive file's path (its words find the file).
    source: Mapped[str] = mapped_column(Text, default="")
    workspace_id: Mapped[str | None] = mapped_column(String(128))
    agent: Mapped[str | None] = mapped_column(String(63))
    task_id: Mapped[str | None] = mapped_column(String(36))
    archive: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    line_start: Mapped[int | None] = mapped_column(Integer)
    line_end: Mapped[int | None] = mapped_column(Integer)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32, little-endian
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArchiveRow(Base):
    """An archive's last indexing: its progress and what was skipped, and why."""

    __tablename__ = "memory_archives"

    location: Mapped[str] = mapped_column(Text, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # indexing | done | failed
    files_seen: Mapped[int] = mapped_column(Integer, default=0)
    files_indexed: Mapped[int] = mapped_column(Integer, default=0)
    files_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    files_removed: Mapped[int] = mapped_column(Integer, default=0)
    files_skipped: Mapped[int] = mapped_column(Integer, default=0)
    snippets: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArchiveFileRow(Base):
    """Each indexed file's fingerprint (size and mtime, or the member's CRC): a file whose
    fingerprint is unchanged is not read again."""

    __tablename__ = "memory_archive_files"

    archive: Mapped[str] = mapped_column(Text, primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
