"""index for the queue's claim order: queued tasks by age, then id

With (status, created_at) only, SQLite sorted the id part of the claim's ORDER BY in a temporary
B-tree and so evaluated the claim's conditions for every queued task: 12 ms per claim with 5,000
queued tasks, against 0.01 ms with the id in the index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_tasks_status_created_at", table_name="tasks")
    op.create_index("ix_tasks_status_created_at_id", "tasks", ["status", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_status_created_at_id", table_name="tasks")
    op.create_index("ix_tasks_status_created_at", "tasks", ["status", "created_at"])
