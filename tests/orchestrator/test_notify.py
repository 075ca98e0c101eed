"""Wake-ups between orchestrator processes over PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio

import asyncpg

from anvyl.orchestrator.tasks.wakeups import CrossProcessWakeups, asyncpg_dsn


async def test_notices_reach_the_other_process_and_survive_a_lost_connection(
    postgres_url: str,
) -> None:
    sender_saw: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
    receiver_saw: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
    sender = CrossProcessWakeups(
        postgres_url,
        on_task_queued=lambda ws: sender_saw.put_nowait(("queued", ws)),
        on_task_event=lambda task: sender_saw.put_nowait(("event", task)),
    )
    receiver = CrossProcessWakeups(
        postgres_url,
        on_task_queued=lambda ws: receiver_saw.put_nowait(("queued", ws)),
        on_task_event=lambda task: receiver_saw.put_nowait(("event", task)),
    )
    await sender.start()
    await receiver.start()
    try:
        sender.task_queued("ws-1")
        sender.task_event("task-1")
        sender.task_queued(None)
        async with asyncio.timeout(10):
            got = [await receiver_saw.get() for _ in range(3)]
        assert got == [("queued", "ws-1"), ("event", "task-1"), ("queued", None)]
        assert sender_saw.empty()  # a process does not wake itself twice

        # The server drops the receiver's connection (a restart, a proxy, an idle timeout): it
        # reconnects and listens again by itself, although it sends nothing.
        admin = await asyncpg.connect(asyncpg_dsn(postgres_url), timeout=10)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
        finally:
            await admin.close()
        assert killed == 1
        async with asyncio.timeout(20):
            while True:  # notices sent before it listens again are lost: that is what polls are for
                sender.task_queued("ws-2")
                try:
                    if await asyncio.wait_for(receiver_saw.get(), 0.5) == ("queued", "ws-2"):
                        break
                except TimeoutError:
                    continue
    finally:
        await sender.close()
        await receiver.close()
