"""The SQL of the tasks tables, built once with named parameters: SQLAlchemy then reuses their cache
keys and compiled forms, where a statement built per call is traversed and keyed each time.

Every state change and its event are written in one transaction, so a reader never sees a task whose
events disagree with its status. Event numbers (`seq`) come from a counter on the task's row
(`event_seq`), advanced by the same UPDATE that changes the task or, for step events, by an UPDATE of
its own: the row lock that UPDATE takes makes them gap-free and ordered even when several
orchestrator processes write to one task. Only the `tasks` package runs these statements; other
packages that need to know about tasks (the workspace listing, say) use the public ones here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
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

from anvyl.orchestrator.db.tables import Task
from anvyl.orchestrator.tasks.states import (
    ACTIVE_STATES,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    Event,
)

TASKS = Task.metadata.tables["tasks"]
EVENTS = Task.metadata.tables["task_events"]
T, E = TASKS.c, EVENTS.c


# The workspaces with an active task (the claim skips them; the workspace listing shows them busy).
BUSY_WORKSPACES = select(T.workspace_id).where(
    T.status.in_(ACTIVE_STATES), T.workspace_id.is_not(None)
)


# A workspace's running or waiting task, if any (its removal waits for it).
ACTIVE_TASK_IN_WORKSPACE = (
    select(T.id).where(T.workspace_id == bindparam("workspace_id"), T.status.in_(ACTIVE_STATES))
    .limit(1)
)  # fmt: skip
# The repository of a workspace's latest task (for a request that names only the workspace).
LATEST_REPO_URL = (
    select(T.repo_url).where(T.workspace_id == bindparam("workspace_id"))
    .order_by(T.created_at.desc()).limit(1)
)  # fmt: skip
# When each workspace's last task ended.
LAST_FINISHED_BY_WORKSPACE = (
    select(T.workspace_id, func.max(T.finished_at))
    .where(T.workspace_id.is_not(None), T.finished_at.is_not(None)).group_by(T.workspace_id)
)  # fmt: skip


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
    candidate = TASKS.alias("candidate")
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
PICK_NEXT = _pick_next_statement()
INSERT_TASKS = insert(TASKS)
# PostgreSQL: new tasks and their first events as one statement (see `Database.write_single`). The
# rows travel as one JSON array that the server reads back into rows of the tasks table; a key
# missing from a row reads as NULL, not as the column's default, so the rows carry every column
# that is NOT NULL (`create` and `_insert_rows` set them).
PG_INSERT_TASKS = text(
    "WITH new_tasks AS (INSERT INTO tasks"
    " SELECT * FROM json_populate_recordset(CAST(NULL AS tasks), CAST(:tasks AS JSON))"
    " RETURNING id, created_at)"
    " INSERT INTO task_events (task_id, seq, type, data, created_at)"
    " SELECT id, 1, 'status', CAST(:first AS JSON), created_at FROM new_tasks"
)
INSERT_EVENTS = insert(EVENTS)
GET = select(TASKS).where(T.id == bindparam("task_id"))
BY_IDEMPOTENCY_KEY = select(TASKS).where(T.idempotency_key == bindparam("key"))
EVENT_SEQ = select(T.event_seq).where(T.id == bindparam("task_id"))
ADVANCE_SEQ = (
    update(TASKS).where(T.id == bindparam("task_id"))
    .values(event_seq=T.event_seq + bindparam("n_events")).returning(T.event_seq)
)  # fmt: skip
EVENTS_AFTER = (
    select(EVENTS)
    .where(E.task_id == bindparam("task_id"), E.seq > bindparam("after"))
    .order_by(E.seq)
)
_LEASED = (T.id == bindparam("task_id"), T.lease_owner == bindparam("owner"),
           T.status.in_(ACTIVE_STATES))  # fmt: skip
_CLAIM_VALUES = dict(status=RUNNING, lease_owner=bindparam("owner"),
                     lease_expires_at=bindparam("expires"), attempts=T.attempts + 1,
                     started_at=bindparam("now"), cancel_requested=False,
                     event_seq=T.event_seq + 1)  # fmt: skip
CLAIM = update(TASKS).where(T.id == bindparam("task_id")).values(_CLAIM_VALUES).returning(*TASKS.c)


def _pg_claim_statement() -> Select[Any]:
    """PostgreSQL: the whole claim (pick, lease, "running" event) as one statement, so that it
    needs no transaction block: one round trip, also when there is nothing to take."""
    picked = PICK_NEXT.cte("picked")
    claimed = (
        update(TASKS).where(T.id == picked.c.id).values(_CLAIM_VALUES)
        .returning(*TASKS.c).cte("claimed")
    )  # fmt: skip
    started = insert(EVENTS).from_select(
        ["task_id", "seq", "type", "data", "created_at"],
        select(claimed.c.id, claimed.c.event_seq, literal("status"),
               bindparam("event", type_=JSON), bindparam("now", type_=T.started_at.type)),
    )  # fmt: skip
    return select(claimed).add_cte(started.cte("started"))


PG_CLAIM = _pg_claim_statement()
HEARTBEAT = (
    update(TASKS).where(*_LEASED).values(lease_expires_at=bindparam("expires"))
    .returning(T.cancel_requested)
)  # fmt: skip
SET_STATUS = (
    update(TASKS).where(*_LEASED)
    .values(status=bindparam("new_status"), event_seq=T.event_seq + 1).returning(T.event_seq)
)  # fmt: skip
RELEASE = (
    update(TASKS).where(*_LEASED)
    .values(status=QUEUED, lease_owner=None, lease_expires_at=None, attempts=T.attempts - 1,
            event_seq=T.event_seq + 1)
    .returning(T.event_seq)
)  # fmt: skip
FLAG_CANCEL = (
    update(TASKS).where(T.id == bindparam("task_id"), T.status.in_(ACTIVE_STATES))
    .values(cancel_requested=True).returning(T.status)
)  # fmt: skip
REQUEUE = (
    update(TASKS).where(T.id == bindparam("task_id"))
    .values(status=QUEUED, lease_owner=None, lease_expires_at=None, event_seq=T.event_seq + 1)
    .returning(T.event_seq)
)  # fmt: skip


@functools.cache  # built once per kind of finish (a handful), so its compiled form is reused
def finish_statement(by_owner: bool, from_states: tuple[str, ...] | None) -> Update:
    condition = [T.id == bindparam("task_id"), T.status.not_in(FINAL_STATES)]
    if from_states is not None:
        condition.append(T.status.in_(from_states))
    if by_owner:
        condition.append(T.lease_owner == bindparam("owner"))
    return (
        update(TASKS)
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


def insert_events(connection: Connection, task_id: str, events: Sequence[Event], last: int) -> None:
    """Insert a task's new events, numbered up to `last`: the task row's `event_seq` just after
    the caller's UPDATE advanced it by len(events) (that UPDATE holds the row lock until commit)."""
    first = last - len(events) + 1
    rows = [{"task_id": task_id, "seq": first + n, "type": type_, "data": data, "created_at": when}
            for n, (type_, data, when) in enumerate(events)]  # fmt: skip
    connection.execute(INSERT_EVENTS, rows)


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
        insert(EVENTS)
        .from_select(["task_id", "seq", "type", "data", "created_at"], numbered)
        .returning(E.seq)
    )


def advance_and_append(
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
        insert_events(connection, parameters["task_id"], events, last)
    return last


def task_or_none(result: Any) -> Task | None:
    row = result.first()
    return None if row is None else task_from_row(row)


def task_from_row(row: Row[Any]) -> Task:
    """A Task from a row of the tasks table (the column "metadata" is the attribute `meta`)."""
    values = dict(row._mapping)
    values["meta"] = values.pop("metadata")
    return Task(**values)
