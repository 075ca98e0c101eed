"""memories: an index on task_id (a task's summary is replaced, not added again, when the task runs
again after its lease was lost)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_memories_task_id", "memories", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_memories_task_id", table_name="memories")
