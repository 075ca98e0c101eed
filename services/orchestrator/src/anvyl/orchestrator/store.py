"""Reading and writing tasks and their events."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Task, TaskEvent, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, *, query: str, repo_url: str | None, workspace_id: str | None,
                     request: dict[str, Any]) -> Task:  # fmt: skip
        task = Task(
            id=str(uuid.uuid4()),
            status=QUEUED,
            query=query,
            repo_url=repo_url,
            workspace_id=workspace_id,
            request=request,
            meta={},
            attempts=0,
        )
        async with self.db.session.begin() as session:
            session.add(task)
            session.add(TaskEvent(task_id=task.id, seq=1, type="status", data={"status": QUEUED}))
        return task

    async def get(self, task_id: str) -> Task | None:
        async with self.db.session() as session:
            return await session.get(Task, task_id)

    async def events(self, task_id: str, after_seq: int = 0) -> list[TaskEvent]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(TaskEvent)
                .where(TaskEvent.task_id == task_id, TaskEvent.seq > after_seq)
                .order_by(TaskEvent.seq)
            )
            return list(rows)

    async def last_seq(self, task_id: str) -> int:
        async with self.db.session() as session:
            value = await session.scalar(
                select(func.max(TaskEvent.seq)).where(TaskEvent.task_id == task_id)
            )
            return int(value or 0)

    async def add_event(self, task_id: str, seq: int, type_: str, data: dict[str, Any]) -> None:
        async with self.db.session.begin() as session:
            session.add(TaskEvent(task_id=task_id, seq=seq, type=type_, data=data))

    async def update(self, task_id: str, **values: Any) -> None:
        async with self.db.session.begin() as session:
            await session.execute(update(Task).where(Task.id == task_id).values(**values))

    async def fail_interrupted(self, reason: str) -> int:
        """Fail tasks left running by a previous process of this (single-process) orchestrator."""
        async with self.db.session.begin() as session:
            result = await session.execute(
                update(Task)
                .where(Task.status.in_([QUEUED, RUNNING]))
                .values(status=FAILED, error=reason, finished_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)
