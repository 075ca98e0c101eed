"""Engine and session factory for SQLite (embedded default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from anvyl.orchestrator.db.migrations import upgrade_to_head

_MIGRATION_LOCK_KEY = 0x616E76796C  # "anvyl": the advisory lock that serializes migrations


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
            # Sized for the runners plus concurrent API requests, so connections are reused rather
            # than opened per burst; recycled instead of pinged before every checkout.
            kwargs.update(pool_size=20, max_overflow=20, pool_recycle=1800,
                          connect_args={"timeout": 10, "command_timeout": 60})  # fmt: skip
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # Sessions are short, one per unit of work: an UPDATE need not bring loaded objects up to
        # date ("synchronize_session"), which was a measurable share of a task's CPU.
        self.session = async_sessionmaker(self.engine, expire_on_commit=False,
                                          execution_options={"synchronize_session": False})  # fmt: skip
        # SQLite has one writer at a time and no row locks: serialize this process's write
        # transactions, so a read-then-write (like numbering an event) cannot race another.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        """SQLite: this process's write transactions take turns (see `_write_lock`)."""
        if self._write_lock is None:
            yield
            return
        async with self._write_lock:
            yield

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction (committed at the end, rolled back on error)."""
        async with self._writer_turn(), self.session.begin() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on a plain connection, for Core statements: the hot paths (enqueue,
        claim, events, finish) skip the ORM session, which was most of a task's database CPU."""
        async with self._writer_turn(), self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for Core reads (rolled back at the end)."""
        async with self.engine.connect() as connection:
            yield connection

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
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (GET /tasks) proceed while a task writes its events.
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL survives a crash of the process; only a power cut may lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
