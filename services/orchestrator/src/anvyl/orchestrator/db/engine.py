"""The database: SQLite (embedded default) or PostgreSQL (asyncpg), read and written through work
functions on a connection (`Database.write`, `write_single`, `read`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from anvyl.orchestrator.db.migrations import upgrade_to_head

_MIGRATION_LOCK_KEY = 0x616E76796C  # "anvyl": the advisory lock that serializes migrations
ResultT = TypeVar("ResultT")
# Work on a synchronous connection: the body of one transaction (`Database.write`) or read.
Work = Callable[[Connection], ResultT]


class Database:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # Every connection goes back to the pool with its transaction ended (committed or
            # rolled back by its context manager), so the pool's own rollback on return is a
            # redundant trip to aiosqlite's thread on every use.
            kwargs = {"connect_args": {"timeout": 30}, "pool_reset_on_return": None}
        elif self.dialect == "postgresql":
            # Sized for the task slots plus concurrent API requests, so connections are reused rather
            # than opened per burst; recycled instead of pinged before every checkout.
            kwargs.update(pool_size=20, max_overflow=20, pool_recycle=1800,
                          connect_args={"timeout": 10, "command_timeout": 60})  # fmt: skip
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # In-memory SQLite (tests) has no row locks and runs transactions on the async engine:
        # this process's write transactions take turns, so a read-then-write cannot race another.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        # SQLite files: each transaction (or read) runs whole on a thread of its own with the
        # synchronous driver, one trip from the event loop and back. Through aiosqlite every
        # statement is three or four trips, and under load each trip waits for a turn of the loop
        # (an enqueue spent 2 ms executing and 3 ms waiting for the task slots' writes that way).
        # One writer thread is also the writers' turn-taking: a transaction that reads then writes
        # (numbering events, claiming) cannot race another. (The async engine, aiosqlite, only
        # runs the migrations there.)
        self.sync_engine: Engine = self.engine.sync_engine
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        if self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self.sync_engine = create_engine(
                parsed.set(drivername="sqlite"),
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            event.listen(self.sync_engine, "connect", _sqlite_pragmas)
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="anvyl-sqlite-writer")
            self._readers = ThreadPoolExecutor(2, thread_name_prefix="anvyl-sqlite-reader")

    async def write(self, work: Work[ResultT]) -> ResultT:
        """Run `work` as one write transaction: committed when it returns, rolled back if it raises.

        Every access to the database goes through `write`, `write_single` or `read`, with Core
        statements (the hot paths: enqueue, claim, events and finish use `write_single`, a single
        statement on PostgreSQL)."""
        if self._writer is None:  # PostgreSQL (row locks order its writers), in-memory SQLite
            async with self._writer_turn(), self.engine.begin() as connection:
                return await connection.run_sync(work)
        return await asyncio.get_running_loop().run_in_executor(
            self._writer, _in_transaction, self.sync_engine, work
        )

    async def write_single(self, work: Work[ResultT]) -> ResultT:
        """Run `work`, which on PostgreSQL issues a single statement (atomic by itself), outside a
        transaction block there: one round trip instead of three (BEGIN, the statement, COMMIT).
        The hot paths' writes of several rows are single statements there (data-modifying CTEs).
        Elsewhere `work` runs as a transaction, like `write`."""
        if self.dialect != "postgresql":
            return await self.write(work)
        async with self._autocommit() as connection:
            return await connection.run_sync(work)

    async def read(self, work: Work[ResultT]) -> ResultT:
        """Run `work` on a connection for reading. On PostgreSQL its statements run outside a
        transaction block: under READ COMMITTED each statement sees its own snapshot either way,
        and a read is then one round trip instead of three (BEGIN, the query, ROLLBACK)."""
        if self.dialect == "postgresql":
            async with self._autocommit() as connection:
                return await connection.run_sync(work)
        if self._readers is None:
            async with self.engine.connect() as connection:
                return await connection.run_sync(work)
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, _on_connection, self.sync_engine, work
        )

    @asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[AsyncConnection]:
        # The isolation level is the driver's setting on the pooled connection (no round trip);
        # the pool sets it back when the connection returns.
        async with self.engine.connect() as connection:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        """In-memory SQLite: this process's write transactions take turns (see `_write_lock`)."""
        if self._write_lock is None:
            yield
            return
        async with self._write_lock:
            yield

    async def upgrade(self) -> None:
        """Apply the Alembic migrations up to head."""
        async with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                # Replicas (and `anvyl serve --workers N`) start together: one migrates, the
                # others wait here and then find the schema current.
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                         {"key": _MIGRATION_LOCK_KEY})  # fmt: skip
            await connection.run_sync(upgrade_to_head)

    async def close(self) -> None:
        for pool in (self._writer, self._readers):
            if pool is not None:
                # The transactions in progress end first; waited for off the event loop (one may
                # sit in SQLite's busy timeout), so other coroutines go on meanwhile.
                await asyncio.to_thread(pool.shutdown, wait=True)
        if self.sync_engine is not self.engine.sync_engine:
            self.sync_engine.dispose()
        await self.engine.dispose()


def _in_transaction(engine: Engine, work: Work[ResultT]) -> ResultT:
    with engine.begin() as connection:
        return work(connection)


def _on_connection(engine: Engine, work: Work[ResultT]) -> ResultT:
    with engine.connect() as connection:
        return work(connection)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (GET /tasks) proceed while a task writes its events.
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL survives a crash of the process; only a power cut may lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
