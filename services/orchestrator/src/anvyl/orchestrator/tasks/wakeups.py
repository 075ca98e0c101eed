"""Wake-ups across orchestrator processes on one PostgreSQL database (LISTEN/NOTIFY).

Tasks and events live in the database; all that crosses processes here is "look now": a new task
wakes an idle task slot in every process, a new event wakes the streams following its task in every
process. A lost notification costs latency, never data: task slots and streams also poll. So an
API-only process (ANVYL_MAX_CONCURRENT_TASKS=0) hands its tasks to the processes with task slots at once, and a
client streaming from one replica sees the events another replica writes as they are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from anvyl.orchestrator.logging import get_logger

log = get_logger(__name__)
CHANNEL = "anvyl_wakeups"
_RECONNECT_S = 2.0


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (postgresql+asyncpg://...) as a DSN asyncpg itself accepts."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class CrossProcessWakeups:
    """One LISTEN connection per process; outgoing notices are batched into one statement."""

    def __init__(
        self,
        database_url: str,
        *,
        on_task_queued: Callable[[str | None], None],
        on_task_event: Callable[[str], None],
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._on_task_queued = on_task_queued
        self._on_task_event = on_task_event
        self._origin = secrets.token_hex(4)  # our own notices come back to us: skip them
        self._outbox: dict[str, None] = {}  # ordered and without duplicates
        self._has_mail = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._connect()
        self._loop = asyncio.create_task(self._send_loop(), name="wakeups-sender")

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await self._disconnect()

    def task_queued(self, workspace_id: str | None) -> None:
        self._post(f"t {workspace_id or ''}")

    def task_event(self, task_id: str) -> None:
        self._post(f"e {task_id}")

    # Internals ---------------------------------------------------------------------------------

    def _post(self, message: str) -> None:
        self._outbox[f"{self._origin} {message}"] = None
        self._has_mail.set()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=10)
        await connection.add_listener(CHANNEL, self._received)
        # A lost connection also loses the LISTEN: reconnect at once, not at the next notice sent.
        connection.add_termination_listener(lambda _: self._has_mail.set())
        self._connection = connection

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    async def _send_loop(self) -> None:
        while True:
            await self._has_mail.wait()
            self._has_mail.clear()
            batch, self._outbox = list(self._outbox), {}
            try:
                if self._connection is None or self._connection.is_closed():
                    await self._disconnect()
                    await self._connect()
                    log.info("wakeups.reconnected")
                assert self._connection is not None
                if batch:
                    await self._connection.execute(
                        "SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m", CHANNEL, batch,
                        timeout=5,
                    )  # fmt: skip
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                # Dropped notices only delay the others (they poll); try again on a new connection.
                log.warning("wakeups.send_failed", error=repr(exc), dropped=len(batch))
                await self._disconnect()
                await asyncio.sleep(_RECONNECT_S)
                self._has_mail.set()  # look again: reconnect even if nothing more is sent

    def _received(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, _, rest = payload.partition(" ")
        kind, _, subject = rest.partition(" ")
        if origin == self._origin:
            return
        if kind == "t":
            self._on_task_queued(subject or None)
        elif kind == "e" and subject:
            self._on_task_event(subject)
