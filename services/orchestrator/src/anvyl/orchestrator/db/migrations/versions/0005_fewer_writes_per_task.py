"""fewer writes per task: its last event's number on its row, no "busy" flag on workspaces, and
no single-column indexes that the composite ones already cover

Appending events used to lock the task row and then read max(seq) from its events: two statements
per append. With the counter on the row, one UPDATE ... RETURNING both locks the row and hands out
the numbers; the state changes (claim, finish, ...) advance it in the UPDATE they already make.

A workspace row no longer says "busy" (two writes per task, and a stale flag when an orchestrator
died mid-task): the listing reads it from the workspace's active tasks.

ix_tasks_status and ix_tasks_workspace_id lead (status, created_at, id) and (workspace_id, status,
created_at): every query they served, those serve, and each index is one more write per new task
and per status change.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, also on SQLite: a batch (copy and swap) would drop the old tasks table,
    # and with it every task event (ON DELETE CASCADE).
    op.add_column(
        "tasks", sa.Column("event_seq", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.execute(
        "UPDATE tasks SET event_seq = COALESCE("
        "(SELECT max(task_events.seq) FROM task_events WHERE task_events.task_id = tasks.id), 0)"
    )
    op.execute("UPDATE workspaces SET status = 'idle' WHERE status = 'busy'")
    op.drop_index("ix_tasks_status", table_name="tasks")
    op.drop_index("ix_tasks_workspace_id", table_name="tasks")


def downgrade() -> None:
    op.create_index("ix_tasks_workspace_id", "tasks", ["workspace_id"])
    op.create_index("ix_tasks_status", "tasks", ["status"])
    op.drop_column("tasks", "event_seq")  # not a batch, for the reason given in upgrade()
