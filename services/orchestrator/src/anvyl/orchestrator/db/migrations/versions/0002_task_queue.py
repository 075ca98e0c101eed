"""task queue: leases, cancel requests, timeouts, idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("timeout_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("request_hash", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_tasks_idempotency_key", ["idempotency_key"])
        batch.create_index("ix_tasks_created_at", ["created_at"])
        batch.create_index("ix_tasks_status_created_at", ["status", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_status_created_at")
        batch.drop_index("ix_tasks_created_at")
        batch.drop_constraint("uq_tasks_idempotency_key", type_="unique")
        for column in ("request_hash", "idempotency_key", "timeout_s", "cancel_requested",
                       "lease_expires_at", "lease_owner"):  # fmt: skip
            batch.drop_column(column)
