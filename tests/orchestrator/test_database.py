"""Database.write and Database.read: one transaction per call, committed or rolled back whole; on
SQLite the writers take turns on one thread, and closing stops the threads."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select, update

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Task, utcnow

TASKS = Task.metadata.tables["tasks"]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()


def task_row(query: str = "q") -> dict[str, object]:
    return {"id": str(uuid.uuid4()), "status": "queued", "query": query, "request": {},
            "metadata": {}, "attempts": 0, "cancel_requested": False, "created_at": utcnow()}  # fmt: skip


def count_tasks(connection: Connection) -> int:
    return int(connection.scalar(select(func.count()).select_from(TASKS)) or 0)


async def test_a_write_is_committed_when_its_work_returns(db: Database) -> None:
    row = task_row()
    returned = await db.write(lambda c: c.execute(insert(TASKS), row).rowcount)
    assert returned == 1
    assert await db.read(count_tasks) == 1


async def test_a_write_whose_work_raises_leaves_nothing_behind(db: Database) -> None:
    def half_then_fail(connection: Connection) -> None:
        connection.execute(insert(TASKS), task_row())
        raise RuntimeError("second statement failed")

    with pytest.raises(RuntimeError, match="second statement failed"):
        await db.write(half_then_fail)
    assert await db.read(count_tasks) == 0


async def test_concurrent_read_then_write_transactions_do_not_lose_updates(db: Database) -> None:
    """Each write reads the attempts counter and writes it back plus one: 40 at once give 40."""
    row = task_row()
    await db.write(lambda c: c.execute(insert(TASKS), row))

    def increment(connection: Connection) -> None:
        current = connection.scalar(
            select(TASKS.c.attempts).where(TASKS.c.id == row["id"]).with_for_update()
        )
        connection.execute(
            update(TASKS).where(TASKS.c.id == row["id"]).values(attempts=int(current or 0) + 1)
        )

    await asyncio.gather(*(db.write(increment) for _ in range(40)))
    attempts = await db.read(
        lambda c: c.scalar(select(TASKS.c.attempts).where(TASKS.c.id == row["id"]))
    )
    assert attempts == 40


async def test_sqlite_work_runs_off_the_event_loop_and_close_stops_its_threads(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'anvyl.db'}")
    await db.upgrade()
    loop_thread = threading.get_ident()
    try:
        ran_on = await db.write(lambda _: threading.current_thread().name)
        read_on = await db.read(lambda _: threading.current_thread().name)
        assert threading.get_ident() == loop_thread
        assert ran_on.startswith("anvyl-sqlite-writer") and read_on.startswith(
            "anvyl-sqlite-reader"
        )
    finally:
        await db.close()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("anvyl-sqlite")]
    assert alive == []
