"""Live task events: an in-process wake-up for streams on this replica, polling for the others."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

from anvyl.orchestrator.db.tables import TaskEvent
from anvyl.orchestrator.tasks.store import FINAL_STATES, RESULT_EVENT, TaskStore


class EventBus:
    """Tells the streams following a task that it has a new event. Events themselves live in the
    database; a stream that misses a wake-up (another replica wrote the event) finds it by polling."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        # Passes this process's wake-ups on to the other processes (PostgreSQL LISTEN/NOTIFY).
        self.relay: Callable[[str], None] | None = None

    def notify(self, task_id: str) -> None:
        """The task has new events, written by this process."""
        self.notify_local(task_id)
        if self.relay is not None:
            self.relay(task_id)

    def notify_local(self, task_id: str) -> None:
        """The task has new events: wake this process's streams only."""
        for waiter in self._waiters.get(task_id, ()):
            waiter.set()

    @contextmanager
    def listen(self, task_id: str) -> Iterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._waiters[task_id].add(waiter)
        try:
            yield waiter
        finally:
            self._waiters[task_id].discard(waiter)
            if not self._waiters[task_id]:
                del self._waiters[task_id]


async def follow(
    store: TaskStore, bus: EventBus, task_id: str, after_seq: int = 0, poll_s: float = 0.25
) -> AsyncIterator[TaskEvent]:
    """Yield the task's events after `after_seq`, in order, then live ones, until its result event."""
    seq = after_seq
    while True:
        with bus.listen(task_id) as waiter:  # listening before reading: no wake-up is lost
            batch = await store.events(task_id, seq)
            for event in batch:
                yield event
                seq = event.seq
                if event.type == RESULT_EVENT:
                    return
            if batch:
                continue
            try:
                await asyncio.wait_for(waiter.wait(), poll_s)
            except TimeoutError:
                # Nothing new for a while: a client that reconnected after the end has seen it all.
                task = await store.get(task_id)
                if task is None or (task.status in FINAL_STATES and task.finished_at is not None
                                    and not await store.events(task_id, seq)):  # fmt: skip
                    return
