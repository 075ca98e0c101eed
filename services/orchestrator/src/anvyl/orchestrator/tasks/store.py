"""Reading and writing tasks and their events, including the queue's claim, lease and cancel steps.

The one owner of the tasks tables (their SQL is in `statements`). Each write that adds events to a
task tells the event bus once it is stored, so live streams (and, through the bus's relay, other
processes) hear of it from this one place.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Task, TaskEvent, utcnow
from anvyl.orchestrator.tasks.group_commit import GroupCommit
from anvyl.orchestrator.tasks.statements import (
    ACTIVE_TASK_IN_WORKSPACE,
    ADVANCE_SEQ,
    BUSY_WORKSPACES,
    BY_IDEMPOTENCY_KEY,
    CLAIM,
    EVENT_SEQ,
    EVENTS_AFTER,
    FLAG_CANCEL,
    GET,
    HEARTBEAT,
    INSERT_EVENTS,
    INSERT_TASKS,
    LAST_FINISHED_BY_WORKSPACE,
    LATEST_REPO_URL,
    PG_CLAIM,
    PG_INSERT_TASKS,
    PICK_NEXT,
    RELEASE,
    REQUEUE,
    SET_STATUS,
    TASKS,
    E,
    T,
    advance_and_append,
    finish_statement,
    insert_events,
    task_from_row,
    task_or_none,
)
from anvyl.orchestrator.tasks.states import (
    ACTIVE_STATES,
    ALL_STATES,
    CANCELLED,
    FAILED,
    QUEUED,
    QUEUED_EVENT_DATA,
    RESULT_EVENT,
    RUNNING,
    SUCCEEDED,
    WAITING_APPROVAL,
    Event,
)

_QUEUED_EVENT_JSON = json.dumps(QUEUED_EVENT_DATA)


class IdempotencyConflict(ValueError):
    """The Idempotency-Key was used before with a different request body."""


@dataclass(frozen=True)
class Created:
    task: Task
    new: bool  # False when an Idempotency-Key matched an earlier task


class TaskStore:
    def __init__(self, db: Database, on_events: Callable[[str], None] | None = None) -> None:
        """`on_events(task_id)` is called after each write that stored new events of a task
        (the event bus's `notify`): the one place where a write tells the live streams."""
        self.db = db
        self._on_events = on_events or (lambda task_id: None)
        self._enqueue = GroupCommit(self._insert_rows)

    def _stored(self, task_id: str, changed: bool = True) -> bool:
        if changed:
            self._on_events(task_id)
        return changed

    # Creating and reading ---------------------------------------------------------------------

    async def create(
        self,
        *,
        query: str,
        repo_url: str | None,
        workspace_id: str | None,
        request: dict[str, Any],
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Created:
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()), "status": QUEUED, "query": query, "repo_url": repo_url,
            "workspace_id": workspace_id, "request": request, "meta": {}, "attempts": 0,
            "timeout_s": timeout_s, "cancel_requested": False, "idempotency_key": idempotency_key,
            "request_hash": request_hash, "created_at": utcnow(), "event_seq": 1,
        }  # fmt: skip
        if idempotency_key is None:
            await self._enqueue.insert(values)
            return Created(Task(**values), new=True)
        try:
            await self._insert_rows([values])
        except IntegrityError:
            earlier = await self.by_idempotency_key(idempotency_key)
            if earlier is None:
                raise
            if earlier.request_hash != request_hash:
                raise IdempotencyConflict(idempotency_key) from None
            return Created(earlier, new=False)
        return Created(Task(**values), new=True)

    async def _insert_rows(self, tasks: list[dict[str, Any]]) -> None:
        """New queued tasks, each with its first event ("queued", seq 1), all or none."""
        rows = [_task_row(t) | {"event_seq": 1} for t in tasks]

        def insert_rows(connection: Connection) -> None:
            if connection.dialect.name == "postgresql":
                tasks_json = json.dumps(rows, default=_json_default)
                connection.execute(
                    PG_INSERT_TASKS, {"tasks": tasks_json, "first": _QUEUED_EVENT_JSON}
                )
                return
            connection.execute(INSERT_TASKS, rows)
            connection.execute(INSERT_EVENTS, [
                {"task_id": t["id"], "seq": 1, "type": "status", "data": QUEUED_EVENT_DATA,
                 "created_at": t["created_at"]} for t in tasks])  # fmt: skip

        await self.db.write_single(insert_rows)

    async def by_idempotency_key(self, key: str) -> Task | None:
        return await self.db.read(
            lambda c: task_or_none(c.execute(BY_IDEMPOTENCY_KEY, {"key": key}))
        )

    async def get(self, task_id: str) -> Task | None:
        return await self.db.read(lambda c: task_or_none(c.execute(GET, {"task_id": task_id})))

    async def list_tasks(
        self, *, status: str | None, workspace_id: str | None, limit: int, offset: int
    ) -> list[Task]:
        query = select(TASKS).order_by(T.created_at.desc(), T.id.desc())
        if status is not None:
            query = query.where(T.status == status)
        if workspace_id is not None:
            query = query.where(T.workspace_id == workspace_id)
        query = query.limit(limit).offset(offset)
        return await self.db.read(lambda c: [task_from_row(row) for row in c.execute(query)])

    async def events(self, task_id: str, after_seq: int = 0) -> list[TaskEvent]:
        parameters = {"task_id": task_id, "after": after_seq}
        return await self.db.read(
            lambda c: [TaskEvent(**row._mapping) for row in c.execute(EVENTS_AFTER, parameters)]
        )

    async def latest_repo_url(self, workspace_id: str) -> str | None:
        """The repository of the workspace's latest task; None for a workspace with no task."""
        parameters = {"workspace_id": workspace_id}
        return await self.db.read(lambda c: c.scalar(LATEST_REPO_URL, parameters))

    # What the workspaces need to know of their tasks ---------------------------------------

    async def workspace_activity(self) -> tuple[set[str], dict[str, datetime]]:
        """The workspaces with an active task (read from the tasks, which every replica keeps
        current), and when each workspace's last task ended; one read."""

        def read(connection: Connection) -> tuple[set[str], dict[str, datetime]]:
            busy = set(connection.scalars(BUSY_WORKSPACES))
            return busy, dict(connection.execute(LAST_FINISHED_BY_WORKSPACE).all())

        return await self.db.read(read)

    async def has_active_task(self, workspace_id: str) -> bool:
        parameters = {"workspace_id": workspace_id}
        return await self.db.read(
            lambda c: c.scalar(ACTIVE_TASK_IN_WORKSPACE, parameters) is not None
        )

    async def counts_by_status(self) -> dict[str, int]:
        """How many tasks are in each state, every state named (0 for none)."""
        query = select(T.status, func.count()).group_by(T.status)
        counted: dict[str, int] = await self.db.read(lambda c: dict(c.execute(query).all()))
        return {state: int(counted.get(state, 0)) for state in ALL_STATES}

    # Events -----------------------------------------------------------------------------------

    async def last_seq(self, task_id: str) -> int:
        """The seq of the task's last event (0 for an unknown task)."""
        return await self.db.read(lambda c: int(c.scalar(EVENT_SEQ, {"task_id": task_id}) or 0))

    async def record_decision(
        self, task_id: str, *, approved: bool, note: str | None, call_id: str | None
    ) -> str:
        """Record a person's decision on the call a task waits for; returns that call's id.

        Raises LookupError when the task waits for no approval, ValueError for a wrong call id.
        """

        def decide(connection: Connection) -> str:
            found = connection.scalar(select(T.status).where(T.id == task_id).with_for_update())
            if found != WAITING_APPROVAL:
                raise LookupError(f"task {task_id} is not waiting for an approval")
            pending_data = connection.scalar(
                select(E.data).where(E.task_id == task_id, E.type == "status")
                .order_by(E.seq.desc()).limit(1)
            )  # fmt: skip
            pending = (pending_data or {}).get("pending") or {}
            if call_id is not None and call_id != pending.get("call_id"):
                raise ValueError(
                    f"the task waits for call {pending.get('call_id')!r}, not {call_id!r}"
                )
            decided = [data.get("call_id") for data in connection.scalars(
                select(E.data).where(E.task_id == task_id, E.type == "approval"))]  # fmt: skip
            if pending.get("call_id") in decided:
                raise LookupError(f"call {pending.get('call_id')!r} was already decided")
            last = connection.execute(ADVANCE_SEQ, {"task_id": task_id, "n_events": 1}).scalar_one()
            decision = {"call_id": pending.get("call_id"), "approved": approved, "note": note}
            insert_events(connection, task_id, [("approval", decision, utcnow())], last)
            return str(pending.get("call_id"))

        decided = await self.db.write(decide)
        self._stored(task_id)
        return decided

    async def recent_summaries(self, workspace_id: str, limit: int = 5) -> list[str]:
        """Memory: the summaries of the workspace's latest successful tasks, oldest first."""
        query = (
            select(T["metadata"]).where(T.workspace_id == workspace_id, T.status == SUCCEEDED)
            .order_by(T.created_at.desc()).limit(limit)
        )  # fmt: skip
        metas = await self.db.read(lambda c: list(c.scalars(query)))
        return [s for meta in reversed(metas) if (s := (meta or {}).get("summary"))]

    async def add_events(self, task_id: str, events: Sequence[Event]) -> int:
        """Append several (type, data, when) events in one transaction, numbered in order; returns
        the last one's seq. Raises LookupError for an unknown task."""

        def add(connection: Connection) -> int:
            last = advance_and_append(connection, ADVANCE_SEQ, {"task_id": task_id}, events)
            if last is None:
                raise LookupError(f"task {task_id} does not exist")
            return last

        last = await self.db.write_single(add)
        self._stored(task_id)
        return last

    # The queue --------------------------------------------------------------------------------

    async def claim(self, owner: str, lease_s: float) -> Task | None:
        """Take the oldest queued task whose workspace is idle, and lease it to `owner`.

        A task waits while an earlier task of its workspace is queued or active, so tasks of one
        workspace run one at a time in arrival order. SKIP LOCKED lets replicas claim concurrently.
        """
        now = utcnow()
        parameters = {"owner": owner, "now": now, "expires": now + timedelta(seconds=lease_s)}
        started = {"status": RUNNING, "runner": owner}  # "runner": the queue owner id (API field)
        if self.db.dialect == "postgresql":
            claimed = await self.db.write_single(lambda c: task_or_none(
                c.execute(PG_CLAIM, parameters | {"event": started})))  # fmt: skip
            if claimed is not None:
                self._stored(claimed.id)
            return claimed

        def claim(connection: Connection) -> Task | None:
            picked = connection.execute(PICK_NEXT).first()
            if picked is None:
                return None
            task = task_from_row(
                connection.execute(CLAIM, parameters | {"task_id": picked.id}).one()
            )
            insert_events(connection, task.id, [("status", started, now)], task.event_seq)
            return task

        task = await self.db.write(claim)
        if task is not None:
            self._stored(task.id)
        return task

    async def heartbeat(self, task_id: str, owner: str, lease_s: float) -> bool | None:
        """Renew the lease. Returns whether a cancel was requested, or None when the lease was lost."""
        parameters = {"task_id": task_id, "owner": owner,
                      "expires": utcnow() + timedelta(seconds=lease_s)}  # fmt: skip
        row = await self.db.write_single(lambda c: c.execute(HEARTBEAT, parameters).first())
        return None if row is None else bool(row[0])

    async def set_status(self, task_id: str, owner: str, status: str, data: dict[str, Any]) -> bool:
        """Move a leased task between active states (running <-> waiting_approval)."""

        def set_status(connection: Connection) -> bool:
            last = connection.execute(
                SET_STATUS, {"task_id": task_id, "owner": owner, "new_status": status}
            ).scalar()
            if last is None:
                return False
            insert_events(connection, task_id, [("status", {"status": status, **data}, utcnow())],
                           last)  # fmt: skip
            return True

        return self._stored(task_id, await self.db.write(set_status))

    async def finish(
        self,
        task_id: str,
        status: str,
        *,
        owner: str | None,
        result: str | None = None,
        error: str | None = None,
        metadata: dict[str, Any] | None = None,
        from_states: tuple[str, ...] | None = None,
        steps: Sequence[Event] = (),
    ) -> bool:
        """End a task with its status and result events, after `steps` (its step events not stored
        yet: one transaction instead of two). With `owner`, only while it holds the lease; with
        `from_states`, only from those states."""
        statement = finish_statement(owner is not None, from_states)
        now = utcnow()
        result_data = {"status": status, "result": result, "error": error,
                       "metadata": metadata or {}}  # fmt: skip
        events = [*steps, ("status", {"status": status}, now), (RESULT_EVENT, result_data, now)]
        parameters = {"task_id": task_id, "owner": owner, "new_status": status,
                      "new_result": result, "new_error": error, "new_metadata": metadata or {},
                      "now": now}  # fmt: skip
        return self._stored(task_id, await self.db.write_single(
            lambda c: advance_and_append(c, statement, parameters, events) is not None
        ))  # fmt: skip

    async def release(self, task_id: str, owner: str) -> bool:
        """Give a leased task back to the queue (graceful shutdown); the attempt does not count."""

        def release(connection: Connection) -> bool:
            last = connection.execute(RELEASE, {"task_id": task_id, "owner": owner}).scalar()
            if last is None:
                return False
            requeued = {"status": QUEUED, "reason": "its orchestrator shut down; requeued"}
            insert_events(connection, task_id, [("status", requeued, utcnow())], last)
            return True

        return self._stored(task_id, await self.db.write(release))

    async def request_cancel(self, task_id: str) -> str | None:
        """Cancel a queued task at once; flag an active one for the process running it. Returns the new status."""
        if await self.finish(task_id, CANCELLED, owner=None, from_states=(QUEUED,),
                             error="cancelled before it started"):  # fmt: skip
            return CANCELLED
        flag = {"task_id": task_id}
        row = await self.db.write_single(lambda c: c.execute(FLAG_CANCEL, flag).first())
        if (
            row is not None
        ):  # no event yet: the next heartbeat of its process sees the flag and stops
            return str(row[0])
        task = await self.get(task_id)
        return None if task is None else task.status

    async def requeue_expired(self, max_attempts: int, *, all_active: bool = False) -> list[str]:
        """Re-queue tasks whose lease expired (its orchestrator died), or fail them after
        `max_attempts`. With `all_active`, every active task counts as orphaned (SQLite start-up)."""
        stale = select(T.id, T.attempts).where(T.status.in_(ACTIVE_STATES))
        if not all_active:
            stale = stale.where(T.lease_expires_at < utcnow())
        moved: list[str] = []
        exhausted: list[str] = []

        def requeue(connection: Connection) -> None:
            for task_id, attempts in list(
                connection.execute(stale.with_for_update(skip_locked=True))
            ):
                if attempts >= max_attempts:
                    exhausted.append(task_id)
                    continue
                last = connection.execute(REQUEUE, {"task_id": task_id}).scalar_one()
                requeued = {"status": QUEUED, "reason": "its orchestrator stopped; requeued",
                            "attempt": attempts}  # fmt: skip
                insert_events(connection, task_id, [("status", requeued, utcnow())], last)
                moved.append(task_id)

        await self.db.write(requeue)
        for task_id in moved:
            self._stored(task_id)
        for task_id in exhausted:
            await self.finish(
                task_id, FAILED, owner=None,
                error=f"its orchestrator stopped while running it {max_attempts} times; giving up",
            )  # fmt: skip
        return moved


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _task_row(values: dict[str, Any]) -> dict[str, Any]:
    """Task attribute values as the tasks table's columns (the attribute `meta` is "metadata")."""
    row = dict(values)
    row["metadata"] = row.pop("meta")
    return row
