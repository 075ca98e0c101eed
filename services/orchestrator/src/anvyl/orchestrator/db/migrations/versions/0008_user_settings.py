"""user_settings: a user's default model and agent, model preference, RAG archives, memory switch;
user_settings_changes: every change of them (field, old and new value, the API key's fingerprint)

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("default_model", sa.String(length=200), nullable=True),
        sa.Column("default_agent", sa.String(length=63), nullable=True),
        sa.Column("preference", sa.String(length=8), nullable=False),
        sa.Column("rag_archives", sa.JSON(), nullable=False),
        sa.Column("memory_enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "user_settings_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("old_value", sa.JSON(), nullable=True),
        sa.Column("new_value", sa.JSON(), nullable=True),
        sa.Column("api_key", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_user_settings_changes_user_id_id", "user_settings_changes", ["user_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_user_settings_changes_user_id_id", table_name="user_settings_changes")
    op.drop_table("user_settings_changes")
    op.drop_table("user_settings")
