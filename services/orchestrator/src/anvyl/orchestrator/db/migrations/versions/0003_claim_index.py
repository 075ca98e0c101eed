"""index for the queue's claim: tasks by workspace, status and age

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_tasks_workspace_status_created_at", "tasks", ["workspace_id", "status", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_workspace_status_created_at", table_name="tasks")
