"""memory: task summaries and archive snippets with full-text search (FTS5 / tsvector), vectors,
and the archives' indexing state

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_FTS = [
    # External content: the text is stored once (in memories); the triggers keep the index in step.
    "CREATE VIRTUAL TABLE memories_fts USING fts5(text, source, content='memories', "
    "content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN "
    "INSERT INTO memories_fts(rowid, text, source) VALUES (new.id, new.text, new.source); END",
    "CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, text, source) "
    "VALUES ('delete', old.id, old.text, old.source); END",
    "CREATE TRIGGER memories_au AFTER UPDATE ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, text, source) "
    "VALUES ('delete', old.id, old.text, old.source); "
    "INSERT INTO memories_fts(rowid, text, source) VALUES (new.id, new.text, new.source); END",
]
_POSTGRES_FTS = [
    "ALTER TABLE memories ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
    "(to_tsvector('english', source || ' ' || text)) STORED",
    "CREATE INDEX ix_memories_tsv ON memories USING gin (tsv)",
]


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("workspace_id", sa.String(length=128), nullable=True),
        sa.Column("agent", sa.String(length=63), nullable=True),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("archive", sa.Text(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("line_start", sa.Integer(), nullable=True),
        sa.Column("line_end", sa.Integer(), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_memories_workspace_id", "memories", ["workspace_id"])
    op.create_index("ix_memories_agent", "memories", ["agent"])
    op.create_index("ix_memories_archive_path", "memories", ["archive", "path"])
    op.create_table(
        "memory_archives",
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("files_seen", sa.Integer(), nullable=False),
        sa.Column("files_indexed", sa.Integer(), nullable=False),
        sa.Column("files_unchanged", sa.Integer(), nullable=False),
        sa.Column("files_removed", sa.Integer(), nullable=False),
        sa.Column("files_skipped", sa.Integer(), nullable=False),
        sa.Column("snippets", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("location"),
    )
    op.create_table(
        "memory_archive_files",
        sa.Column("archive", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("archive", "path"),
    )
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": _SQLITE_FTS, "postgresql": _POSTGRES_FTS}.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("memories_ai", "memories_ad", "memories_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS memories_fts")
    op.drop_table("memory_archive_files")
    op.drop_table("memory_archives")
    op.drop_index("ix_memories_archive_path", table_name="memories")
    op.drop_index("ix_memories_agent", table_name="memories")
    op.drop_index("ix_memories_workspace_id", table_name="memories")
    op.drop_table("memories")
