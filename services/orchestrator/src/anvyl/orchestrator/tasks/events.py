"""Following a task's events: stored ones first, then live ones as the event bus announces them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from anvyl.orchestrator.db.tables import TaskEvent
from anvyl.orchestrator.tasks.bus import EventBus
from anvyl.orchestrator.tasks.states import FINAL_STATES, RESULT_EVENT
from anvyl.orchestrator.tasks.store import TaskStore


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
