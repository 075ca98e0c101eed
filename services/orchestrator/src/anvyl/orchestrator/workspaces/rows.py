"""The `workspaces` table: one row per workspace (where it lives, whether its worker was stopped or
removed). Only this module reads and writes it; whether a workspace is busy and when it was last
used come from its tasks (the manager asks the task store)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Workspace as WorkspaceRow
from anvyl.orchestrator.db.tables import utcnow

_WORKSPACES = WorkspaceRow.metadata.tables["workspaces"]
W = _WORKSPACES.c
_TOUCH = (
    update(_WORKSPACES).where(W.id == bindparam("workspace_id"))
    .values(status=bindparam("status"), repo_url=bindparam("repo_url"),
            backend=bindparam("backend"), last_used_at=bindparam("now"))
    .returning(W.id)
)  # fmt: skip
_INSERT = insert(_WORKSPACES)
_ALL = select(_WORKSPACES)
_FIND = select(W.id).where(W.id == bindparam("workspace_id"))
_SET_STATUS = (
    update(_WORKSPACES).where(W.id == bindparam("workspace_id")).values(status=bindparam("status"))
)
_DELETE = delete(_WORKSPACES).where(W.id == bindparam("workspace_id"))


class WorkspaceRows:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, workspace_id: str, repo_url: str, backend: str) -> None:
        """The workspace's row, as idle with a live worker: an UPDATE, or an INSERT the first time."""
        values = {"status": "idle", "repo_url": repo_url, "backend": backend}
        now = utcnow()

        def record(connection: Connection) -> None:
            updated = connection.execute(
                _TOUCH, {"workspace_id": workspace_id, "now": now, **values}
            )
            if updated.first() is None:
                connection.execute(_INSERT, {"id": workspace_id, **values})

        await self.db.write(record)

    async def adopt(self, workspace_id: str, status: str, backend: str) -> None:
        """The row of an adopted worker: its status set, or a new row when there was none."""
        found = {"workspace_id": workspace_id, "status": status}
        new = {"id": workspace_id, "repo_url": "(adopted)", "backend": backend, "status": status}

        def adopt(connection: Connection) -> None:
            if connection.execute(_SET_STATUS, found).rowcount == 0:
                connection.execute(_INSERT, new)

        await self.db.write(adopt)

    async def set_status(self, workspace_id: str, status: str) -> None:
        parameters = {"workspace_id": workspace_id, "status": status}
        await self.db.write(lambda c: c.execute(_SET_STATUS, parameters))

    async def delete(self, workspace_id: str) -> None:
        await self.db.write(lambda c: c.execute(_DELETE, {"workspace_id": workspace_id}))

    async def exists(self, workspace_id: str) -> bool:
        parameters = {"workspace_id": workspace_id}
        return await self.db.read(lambda c: c.execute(_FIND, parameters).first()) is not None

    async def all(self) -> list[Row[Any]]:
        return await self.db.read(lambda c: list(c.execute(_ALL)))
