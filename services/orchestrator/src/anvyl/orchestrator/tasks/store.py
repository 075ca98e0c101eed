"""Reading and writing tasks and their events, including the queue's claim, lease and cancel steps.

Every state change and its event are written in one transaction, so a reader never sees a task whose
events disagree with its status. Event numbers (`seq`) come from a counter on the task's row
(`event_seq`), advanced by the same UPDATE that changes the task or, for step events, by an UPDATE of
its own: the row lock that UPDATE takes makes them gap-free and ordered even when several
orchestrator processes write to one task.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Insert,
    Integer,
    Row,
    Select,
    String,
    Update,
    bindparam,
    column,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Task, TaskEvent, utcnow

QUEUED, RUNNING, WAITING_APPROVAL = "queued", "running", "waiting_approval"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
ACTIVE_STATES = (RUNNING, WAITING_APPROVAL)
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
ALL_STATES = (QUEUED, RUNNING, WAITING_APPROVAL, SUCCEEDED, FAILED, CANCELLED)
RESULT_EVENT = "result"  # the last event of every task
_QUEUED_EVENT_DATA = {"status": QUEUED}  # the first event of every task
_QUEUED_EVENT_JSON = json.dumps(_QUEUED_EVENT_DATA)


_TASKS = Task.metadata.tables["tasks"]
_EVENTS = Task.metadata.tables["task_events"]
T, E = _TASKS.c, _EVENTS.c


# The workspaces with an active task (the claim skips them; the workspace listing shows them busy).
BUSY_WORKSPACES = select(T.workspace_id).where(
    T.status.in_(ACTIVE_STATES), T.workspace_id.is_not(None)
)


def _pick_next_statement() -> Select[str, str | None]:
    """The oldest queued task outside the busy workspaces that has no earlier queued task in its
    workspace.

    The busy workspaces are an uncorrelated NOT IN subquery: PostgreSQL runs it once and filters
    with its hashed result while it walks the (status, created_at, id) index, stopping at the first
    task it can take. (With a correlated subquery it hash-anti-joined every queued task and sorted:
    80 ms per claim with 15,000 queued.) Being one statement, the pick sees the busy workspaces and
    the queue in one snapshot: a workspace whose task another replica has just claimed is either
    busy there or still has that task queued, so its next task is never taken beside it.
    """
    candidate = _TASKS.alias("candidate")
    earlier = (
        select(T.id)
        .where(
            T.workspace_id == candidate.c.workspace_id,
            T.status == QUEUED,
            # The first term bounds the index range: without it, the OR made every claim walk all
            # the queued tasks of the workspace (milliseconds per claim with a few thousand).
            T.created_at <= candidate.c.created_at,
            or_(T.created_at < candidate.c.created_at, T.id < candidate.c.id),
        )
        .exists()
    )
    idle = or_(candidate.c.workspace_id.is_(None), candidate.c.workspace_id.not_in(BUSY_WORKSPACES))
    return (
        select(candidate.c.id, candidate.c.workspace_id)
        .where(candidate.c.status == QUEUED, idle, ~earlier)
        .order_by(candidate.c.created_at, candidate.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


# The statements of the hot paths, built once with named parameters: SQLAlchemy then reuses their
# cache keys and compiled forms, where a statement built per call is traversed and keyed each time.
_PICK_NEXT = _pick_next_statement()
_INSERT_TASKS = insert(_TASKS)
# PostgreSQL: new tasks and their first events as one statement (see `Database.write_single`). The
# rows travel as one JSON array that the server reads back into rows of the tasks table; a key
# missing from a row reads as NULL, not as the column's default, so the rows carry every column
# that is NOT NULL (`create` and `_insert_rows` set them).
_PG_INSERT_TASKS = text(
    "WITH new_tasks AS (INSERT INTO tasks"
    " SELECT * FROM json_populate_recordset(CAST(NULL AS tasks), CAST(:tasks AS JSON))"
    " RETURNING id, created_at)"
    " INSERT INTO task_events (task_id, seq, type, data, created_at)"
    " SELECT id, 1, 'status', CAST(:first AS JSON), created_at FROM new_tasks"
)
_INSERT_EVENTS = insert(_EVENTS)
_GET = select(_TASKS).where(T.id == bindparam("task_id"))
_BY_IDEMPOTENCY_KEY = select(_TASKS).where(T.idempotency_key == bindparam("key"))
_EVENT_SEQ = select(T.event_seq).where(T.id == bindparam("task_id"))
_ADVANCE_SEQ = (
    update(_TASKS).where(T.id == bindparam("task_id"))
    .values(event_seq=T.event_seq + bindparam("n_events")).returning(T.event_seq)
)  # fmt: skip
_EVENTS_AFTER = (
    select(_EVENTS)
    .where(E.task_id == bindparam("task_id"), E.seq > bindparam("after"))
    .order_by(E.seq)
)
_LEASED = (T.id == bindparam("task_id"), T.lease_owner == bindparam("owner"),
           T.status.in_(ACTIVE_STATES))  # fmt: skip
_CLAIM_VALUES = dict(status=RUNNING, lease_owner=bindparam("owner"),
                     lease_expires_at=bindparam("expires"), attempts=T.attempts + 1,
                     started_at=bindparam("now"), cancel_requested=False,
                     event_seq=T.event_seq + 1)  # fmt: skip
_CLAIM = (
    update(_TASKS).where(T.id == bindparam("task_id")).values(_CLAIM_VALUES).returning(*_TASKS.c)
)


def _pg_claim_statement() -> Select[Any]:
    """PostgreSQL: the whole claim (pick, lease, "running" event) as one statement, so that it
    needs no transaction block: one round trip, also when there is nothing to take."""
    picked = _PICK_NEXT.cte("picked")
    claimed = (
        update(_TASKS).where(T.id == picked.c.id).values(_CLAIM_VALUES)
        .returning(*_TASKS.c).cte("claimed")
    )  # fmt: skip
    started = insert(_EVENTS).from_select(
        ["task_id", "seq", "type", "data", "created_at"],
        select(claimed.c.id, claimed.c.event_seq, literal("status"),
               bindparam("event", type_=JSON), bindparam("now", type_=T.started_at.type)),
    )  # fmt: skip
    return select(claimed).add_cte(started.cte("started"))


_PG_CLAIM = _pg_claim_statement()
_HEARTBEAT = (
    update(_TASKS).where(*_LEASED).values(lease_expires_at=bindparam("expires"))
    .returning(T.cancel_requested)
)  # fmt: skip
_SET_STATUS = (
    update(_TASKS).where(*_LEASED)
    .values(status=bindparam("new_status"), event_seq=T.event_seq + 1).returning(T.event_seq)
)  # fmt: skip
_RELEASE = (
    update(_TASKS).where(*_LEASED)
    .values(status=QUEUED, lease_owner=None, lease_expires_at=None, attempts=T.attempts - 1,
            event_seq=T.event_seq + 1)
    .returning(T.event_seq)
)  # fmt: skip
_FLAG_CANCEL = (
    update(_TASKS).where(T.id == bindparam("task_id"), T.status.in_(ACTIVE_STATES))
    .values(cancel_requested=True).returning(T.status)
)  # fmt: skip
_REQUEUE = (
    update(_TASKS).where(T.id == bindparam("task_id"))
    .values(status=QUEUED, lease_owner=None, lease_expires_at=None, event_seq=T.event_seq + 1)
    .returning(T.event_seq)
)  # fmt: skip


@functools.cache  # built once per kind of finish (a handful), so its compiled form is reused
def _finish_statement(by_owner: bool, from_states: tuple[str, ...] | None) -> Update:
    condition = [T.id == bindparam("task_id"), T.status.not_in(FINAL_STATES)]
    if from_states is not None:
        condition.append(T.status.in_(from_states))
    if by_owner:
        condition.append(T.lease_owner == bindparam("owner"))
    return (
        update(_TASKS)
        .where(*condition)
        .values({T.status: bindparam("new_status", type_=T.status.type),
                 T.result: bindparam("new_result", type_=T.result.type),
                 T.error: bindparam("new_error", type_=T.error.type),
                 T["metadata"]: bindparam("new_metadata", type_=T["metadata"].type),
                 T.finished_at: bindparam("now", type_=T.finished_at.type),
                 T.lease_owner: None, T.lease_expires_at: None,
                 T.event_seq: T.event_seq + bindparam("n_events", type_=T.event_seq.type)})
        .returning(T.event_seq)
    )  # fmt: skip


Event = tuple[str, dict[str, Any], datetime]  # (type, data, when it happened)


def _insert_events(
    connection: Connection, task_id: str, events: Sequence[Event], last: int
) -> None:
    """Insert a task's new events, numbered up to `last`: the task row's `event_seq` just after
    the caller's UPDATE advanced it by len(events) (that UPDATE holds the row lock until commit)."""
    first = last - len(events) + 1
    rows = [{"task_id": task_id, "seq": first + n, "type": type_, "data": data, "created_at": when}
            for n, (type_, data, when) in enumerate(events)]  # fmt: skip
    connection.execute(_INSERT_EVENTS, rows)


@functools.cache
def _with_events(advance: Update) -> Insert:
    """PostgreSQL: `advance` and the INSERT of the events it numbers, as one statement (a
    data-modifying CTE), so that it needs no transaction block: one round trip instead of four.
    Returns the new events' seqs, none when `advance` matched no task."""
    advanced = advance.cte("advanced")
    new = (
        func.json_to_recordset(bindparam("events", type_=JSON))
        .table_valued(column("n", Integer), column("type", String), column("data", JSON),
                      column("created_at", DateTime(timezone=True)))
        .render_derived(with_types=True)
    )  # fmt: skip
    numbered = select(
        bindparam("task_id", type_=String), advanced.c.event_seq - bindparam("n_events") + new.c.n,
        new.c.type, new.c.data, new.c.created_at,
    ).select_from(advanced.join(new, true()))  # fmt: skip
    return (
        insert(_EVENTS)
        .from_select(["task_id", "seq", "type", "data", "created_at"], numbered)
        .returning(E.seq)
    )


def _advance_and_append(
    connection: Connection, advance: Update, parameters: dict[str, Any], events: Sequence[Event]
) -> int | None:
    """Run `advance` (an UPDATE of one task that moves its `event_seq` on by :n_events and returns
    it) and store `events` numbered up to it. Returns the last seq, or None when `advance` matched
    no task (and nothing was stored). On PostgreSQL this is a single statement (see
    `Database.write_single`)."""
    parameters = parameters | {"n_events": len(events)}
    if connection.dialect.name == "postgresql":
        rows = [{"n": n, "type": type_, "data": data, "created_at": when.isoformat()}
                for n, (type_, data, when) in enumerate(events, start=1)]  # fmt: skip
        seqs = connection.scalars(_with_events(advance), parameters | {"events": rows}).all()
        return max(seqs) if seqs else None
    last = connection.execute(advance, parameters).scalar()
    if last is not None:
        _insert_events(connection, parameters["task_id"], events, last)
    return last


def _task_or_none(result: Any) -> Task | None:
    row = result.first()
    return None if row is None else _task(row)


def _task(row: Row[Any]) -> Task:
    """A Task from a row of the tasks table (the column "metadata" is the attribute `meta`)."""
    values = dict(row._mapping)
    values["meta"] = values.pop("metadata")
    return Task(**values)


class IdempotencyConflict(ValueError):
    """The Idempotency-Key was used before with a different request body."""


@dataclass(frozen=True)
class Created:
    task: Task
    new: bool  # False when an Idempotency-Key matched an earlier task


class GroupCommit:
    """Concurrent enqueues share one transaction (group commit).

    While one batch is being written, the next requests gather; the batch after it writes them all at
    once. One client sees no added wait (its batch of one is written at once); many clients pay one
    commit per batch instead of one each, which is what bounds enqueue throughput on both databases.
    """

    def __init__(self, write: Callable[[list[dict[str, Any]]], Awaitable[None]],
                 max_batch: int = 256) -> None:  # fmt: skip
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, task: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((task, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="enqueue-group-commit")
        # The write goes on if this request is cancelled: the task is queued or it is not, never half.
        await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = (self._pending[: self._max_batch],
                                    self._pending[self._max_batch :])  # fmt: skip
            try:
                await self._write([task for task, _ in batch])
            except IntegrityError as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                # One bad row must not fail the others: write them one by one to find it.
                for task, future in batch:
                    try:
                        await self._write([task])
                    except Exception as one:
                        _settle(future, one)
                    else:
                        _settle(future, None)
            except Exception as exc:
                # The database itself failed (unreachable, timed out): the whole batch fails at
                # once, rather than each request waiting for a try of its own.
                for _, future in batch:
                    _settle(future, exc)
            else:
                for _, future in batch:
                    _settle(future, None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._enqueue = GroupCommit(self._insert_rows)

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
                    _PG_INSERT_TASKS, {"tasks": tasks_json, "first": _QUEUED_EVENT_JSON}
                )
                return
            connection.execute(_INSERT_TASKS, rows)
            connection.execute(_INSERT_EVENTS, [
                {"task_id": t["id"], "seq": 1, "type": "status", "data": _QUEUED_EVENT_DATA,
                 "created_at": t["created_at"]} for t in tasks])  # fmt: skip

        await self.db.write_single(insert_rows)

    async def by_idempotency_key(self, key: str) -> Task | None:
        return await self.db.read(
            lambda c: _task_or_none(c.execute(_BY_IDEMPOTENCY_KEY, {"key": key}))
        )

    async def get(self, task_id: str) -> Task | None:
        return await self.db.read(lambda c: _task_or_none(c.execute(_GET, {"task_id": task_id})))

    async def list_tasks(
        self, *, status: str | None, workspace_id: str | None, limit: int, offset: int
    ) -> list[Task]:
        query = select(_TASKS).order_by(T.created_at.desc(), T.id.desc())
        if status is not None:
            query = query.where(T.status == status)
        if workspace_id is not None:
            query = query.where(T.workspace_id == workspace_id)
        query = query.limit(limit).offset(offset)
        return await self.db.read(lambda c: [_task(row) for row in c.execute(query)])

    async def events(self, task_id: str, after_seq: int = 0) -> list[TaskEvent]:
        parameters = {"task_id": task_id, "after": after_seq}
        return await self.db.read(
            lambda c: [TaskEvent(**row._mapping) for row in c.execute(_EVENTS_AFTER, parameters)]
        )

    async def counts_by_status(self) -> dict[str, int]:
        query = select(T.status, func.count()).group_by(T.status)
        return await self.db.read(
            lambda c: {status: int(count) for status, count in c.execute(query)}
        )

    # Events -----------------------------------------------------------------------------------

    async def last_seq(self, task_id: str) -> int:
        """The seq of the task's last event (0 for an unknown task)."""
        return await self.db.read(lambda c: int(c.scalar(_EVENT_SEQ, {"task_id": task_id}) or 0))

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
            last = connection.execute(
                _ADVANCE_SEQ, {"task_id": task_id, "n_events": 1}
            ).scalar_one()
            decision = {"call_id": pending.get("call_id"), "approved": approved, "note": note}
            _insert_events(connection, task_id, [("approval", decision, utcnow())], last)
            return str(pending.get("call_id"))

        return await self.db.write(decide)

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
            last = _advance_and_append(connection, _ADVANCE_SEQ, {"task_id": task_id}, events)
            if last is None:
                raise LookupError(f"task {task_id} does not exist")
            return last

        return await self.db.write_single(add)

    # The queue --------------------------------------------------------------------------------

    async def claim(self, owner: str, lease_s: float) -> Task | None:
        """Take the oldest queued task whose workspace is idle, and lease it to `owner`.

        A task waits while an earlier task of its workspace is queued or active, so tasks of one
        workspace run one at a time in arrival order. SKIP LOCKED lets replicas claim concurrently.
        """
        now = utcnow()
        parameters = {"owner": owner, "now": now, "expires": now + timedelta(seconds=lease_s)}
        started = {"status": RUNNING, "runner": owner}
        if self.db.dialect == "postgresql":
            return await self.db.write_single(lambda c: _task_or_none(
                c.execute(_PG_CLAIM, parameters | {"event": started})))  # fmt: skip

        def claim(connection: Connection) -> Task | None:
            picked = connection.execute(_PICK_NEXT).first()
            if picked is None:
                return None
            task = _task(connection.execute(_CLAIM, parameters | {"task_id": picked.id}).one())
            _insert_events(connection, task.id, [("status", started, now)], task.event_seq)
            return task

        return await self.db.write(claim)

    async def heartbeat(self, task_id: str, owner: str, lease_s: float) -> bool | None:
        """Renew the lease. Returns whether a cancel was requested, or None when the lease was lost."""
        parameters = {"task_id": task_id, "owner": owner,
                      "expires": utcnow() + timedelta(seconds=lease_s)}  # fmt: skip
        row = await self.db.write_single(lambda c: c.execute(_HEARTBEAT, parameters).first())
        return None if row is None else bool(row[0])

    async def set_status(self, task_id: str, owner: str, status: str, data: dict[str, Any]) -> bool:
        """Move a leased task between active states (running <-> waiting_approval)."""

        def set_status(connection: Connection) -> bool:
            last = connection.execute(
                _SET_STATUS, {"task_id": task_id, "owner": owner, "new_status": status}
            ).scalar()
            if last is None:
                return False
            _insert_events(connection, task_id, [("status", {"status": status, **data}, utcnow())],
                           last)  # fmt: skip
            return True

        return await self.db.write(set_status)

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
        statement = _finish_statement(owner is not None, from_states)
        now = utcnow()
        result_data = {"status": status, "result": result, "error": error,
                       "metadata": metadata or {}}  # fmt: skip
        events = [*steps, ("status", {"status": status}, now), (RESULT_EVENT, result_data, now)]
        parameters = {"task_id": task_id, "owner": owner, "new_status": status,
                      "new_result": result, "new_error": error, "new_metadata": metadata or {},
                      "now": now}  # fmt: skip
        return await self.db.write_single(
            lambda c: _advance_and_append(c, statement, parameters, events) is not None
        )

    async def release(self, task_id: str, owner: str) -> bool:
        """Give a leased task back to the queue (graceful shutdown); the attempt does not count."""

        def release(connection: Connection) -> bool:
            last = connection.execute(_RELEASE, {"task_id": task_id, "owner": owner}).scalar()
            if last is None:
                return False
            requeued = {"status": QUEUED, "reason": "its orchestrator shut down; requeued"}
            _insert_events(connection, task_id, [("status", requeued, utcnow())], last)
            return True

        return await self.db.write(release)

    async def request_cancel(self, task_id: str) -> str | None:
        """Cancel a queued task at once; flag an active one for its runner. Returns the new status."""
        if await self.finish(task_id, CANCELLED, owner=None, from_states=(QUEUED,),
                             error="cancelled before it started"):  # fmt: skip
            return CANCELLED
        flag = {"task_id": task_id}
        row = await self.db.write_single(lambda c: c.execute(_FLAG_CANCEL, flag).first())
        if row is not None:
            return str(row[0])
        task = await self.get(task_id)
        return None if task is None else task.status

    async def requeue_expired(self, max_attempts: int, *, all_active: bool = False) -> list[str]:
        """Re-queue tasks whose runner's lease expired (its orchestrator died), or fail them after
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
                last = connection.execute(_REQUEUE, {"task_id": task_id}).scalar_one()
                requeued = {"status": QUEUED, "reason": "its orchestrator stopped; requeued",
                            "attempt": attempts}  # fmt: skip
                _insert_events(connection, task_id, [("status", requeued, utcnow())], last)
                moved.append(task_id)

        await self.db.write(requeue)
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
