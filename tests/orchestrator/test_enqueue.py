"""The queue's storage: concurrent enqueues share transactions, the claim stays cheap with a backlog,
and a task's events are numbered without gaps from its first to its result."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Task, TaskEvent, utcnow
from anvyl.orchestrator.llm.testing import refused_port
from anvyl.orchestrator.tasks.group_commit import GroupCommit
from anvyl.orchestrator.tasks.statements import PICK_NEXT
from anvyl.orchestrator.tasks.states import QUEUED, RUNNING, Event
from anvyl.orchestrator.tasks.store import TaskStore


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TaskStore]:
    db = Database(database_url)
    await db.upgrade()
    try:
        yield TaskStore(db)
    finally:
        await db.close()


def count_batches(db: Database) -> list[int]:
    """How many statements inserted tasks: one per batch (on PostgreSQL the batch is one
    statement, outside a transaction block)."""
    batches = [0]

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "INSERT INTO tasks" in statement:
            batches[0] += 1

    event.listen(db.sync_engine, "before_cursor_execute", on_execute)
    return batches


async def test_concurrent_enqueues_are_written_together_each_with_its_first_event(
    store: TaskStore,
) -> None:
    batches = count_batches(store.db)
    created = await asyncio.gather(*(
        store.create(query=f"task {n}", repo_url=None, workspace_id="ws", request={"n": n})
        for n in range(100)
    ))  # fmt: skip
    assert all(c.new for c in created) and len({c.task.id for c in created}) == 100
    assert batches[0] <= 3, f"{batches[0]} batches for 100 concurrent enqueues"
    stored = set(await store.db.read(
        lambda c: c.scalars(select(Task.id).where(Task.status == QUEUED)).all()))  # fmt: skip
    first_events = await store.db.read(
        lambda c: list(c.execute(select(TaskEvent.task_id, TaskEvent.seq, TaskEvent.data)))
    )
    assert stored == {c.task.id for c in created}
    assert sorted((task_id, seq) for task_id, seq, _ in first_events) == sorted(
        (c.task.id, 1) for c in created
    )
    assert all(data == {"status": QUEUED} for _, _, data in first_events)
    events = await store.events(created[0].task.id)
    assert [(e.seq, e.type, e.data, e.created_at) for e in events] == [
        (1, "status", {"status": QUEUED}, created[0].task.created_at)
    ]
    assert all(data == {"status": QUEUED} for _, _, data in first_events)


async def test_one_enqueue_alone_is_written_at_once(store: TaskStore) -> None:
    batches = count_batches(store.db)
    created = await store.create(query="alone", repo_url=None, workspace_id=None, request={})
    assert batches[0] == 1
    stored = await store.get(created.task.id)
    assert stored is not None and stored.status == QUEUED


def task_row(task_id: str) -> dict[str, Any]:
    return {"id": task_id, "status": QUEUED, "query": "q", "repo_url": None, "workspace_id": None,
            "request": {}, "meta": {}, "attempts": 0, "timeout_s": None, "cancel_requested": False,
            "idempotency_key": None, "request_hash": None, "created_at": utcnow()}  # fmt: skip


async def test_a_bad_row_fails_only_its_own_enqueue(store: TaskStore) -> None:
    group = GroupCommit(store._insert_rows)
    ids = [str(uuid.uuid4()) for _ in range(10)]
    ids[7] = ids[3]  # the same id twice: the second one breaks the batch's transaction
    results = await asyncio.gather(*(group.insert(task_row(i)) for i in ids),
                                   return_exceptions=True)  # fmt: skip
    failed = [n for n, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [7] and isinstance(results[7], IntegrityError)
    count = await store.db.read(lambda c: c.scalar(select(func.count()).select_from(Task)))
    assert count == 9


async def test_the_claim_reads_queued_tasks_in_index_order_without_sorting() -> None:
    """With the sort in a temporary B-tree SQLite tested every queued task on each claim."""
    db = Database("sqlite+aiosqlite://")
    await db.upgrade()
    try:
        sql = str(
            PICK_NEXT.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
        )
        async with db.engine.connect() as connection:
            plan = [row[-1] for row in await connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
    finally:
        await db.close()
    assert any("ix_tasks_status_created_at_id" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


async def test_a_claim_behind_a_long_backlog_takes_the_head_of_the_idle_workspace(
    store: TaskStore,
) -> None:
    start = utcnow()
    rows = [{"id": str(uuid.uuid4()), "status": QUEUED, "query": "q", "workspace_id": "busy",
             "request": {}, "meta": {}, "attempts": 0, "cancel_requested": False,
             "created_at": start + timedelta(microseconds=n)} for n in range(3000)]  # fmt: skip
    rows[0]["status"] = RUNNING
    idle = [{**rows[1], "id": str(uuid.uuid4()), "workspace_id": "idle",
             "created_at": start + timedelta(seconds=1, microseconds=n)} for n in range(2)]  # fmt: skip
    await store.db.write(lambda c: c.execute(insert(Task.metadata.tables["tasks"]), rows + idle))
    claimed = await store.claim("runner", lease_s=30)
    assert claimed is not None and claimed.id == idle[0]["id"]
    assert await store.claim("runner", lease_s=30) is None  # the rest wait for their workspace


async def test_when_the_database_is_down_every_waiting_enqueue_fails_at_once() -> None:
    db = Database(f"postgresql+asyncpg://anvyl:secret@127.0.0.1:{refused_port()}/anvyl")
    store = TaskStore(db)
    attempts = 0

    async def counted_write(tasks: list[dict[str, Any]]) -> None:
        nonlocal attempts
        attempts += 1
        await store._insert_rows(tasks)

    group = GroupCommit(counted_write)
    try:
        results = await asyncio.gather(
            *(group.insert(task_row(str(uuid.uuid4()))) for _ in range(20)), return_exceptions=True
        )
    finally:
        await db.close()
    assert all(isinstance(r, OSError | SQLAlchemyError) for r in results), results
    assert attempts == 1  # not one more try per waiting request


async def new_task(store: TaskStore, workspace_id: str | None) -> str:
    created = await store.create(query="q", repo_url=None, workspace_id=workspace_id, request={})
    return created.task.id


async def test_a_tasks_last_steps_are_stored_with_its_end_numbered_before_it(
    store: TaskStore,
) -> None:
    task_id = await new_task(store, None)
    assert await store.claim("runner", lease_s=30) is not None
    await store.add_events(task_id, [("tool.call", {"n": 1}, utcnow())])
    steps: list[Event] = [("tool.result", {"n": 1}, utcnow()), ("tool.call", {"n": 2}, utcnow())]
    assert await store.finish(task_id, "succeeded", owner="runner", result="done", steps=steps)
    events = await store.events(task_id)
    assert [(e.seq, e.type) for e in events] == [
        (1, "status"), (2, "status"), (3, "tool.call"), (4, "tool.result"), (5, "tool.call"),
        (6, "status"), (7, "result"),
    ]  # fmt: skip
    assert await store.last_seq(task_id) == 7


async def test_a_finish_that_lost_the_lease_stores_none_of_the_steps(store: TaskStore) -> None:
    task_id = await new_task(store, None)
    assert await store.claim("runner", lease_s=30) is not None
    steps: list[Event] = [("tool.result", {}, utcnow())]
    assert not await store.finish(task_id, "succeeded", owner="someone else", steps=steps)
    assert [e.type for e in await store.events(task_id)] == ["status", "status"]
    assert await store.last_seq(task_id) == 2
