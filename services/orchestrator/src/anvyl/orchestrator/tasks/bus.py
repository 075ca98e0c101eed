"""Live task events in this process: an in-process wake-up for the streams following a task."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager


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
