"""Following a task's events: stored ones first, then live ones as the event bus announces them,
with the live tokens of this process in their place among them (see bus.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from anvyl.orchestrator.db.tables import TaskEvent
from anvyl.orchestrator.tasks.bus import EventBus, Token
from anvyl.orchestrator.tasks.states import FINAL_STATES, RESULT_EVENT
from anvyl.orchestrator.tasks.store import TaskStore


def _coalesce(tokens: list[Token]) -> list[Token]:
    """Join consecutive tokens of one step and kind: a slow client gets fewer, longer events."""
    joined: list[Token] = []
    for token in tokens:
        last = joined[-1] if joined else None
        if (last is not None and last.after_seq == token.after_seq and last.step == token.step
                and last.kind == token.kind and token.kind != "discard"):  # fmt: skip
            last.text += token.text
        else:
            joined.append(Token(token.after_seq, token.step, token.kind, token.text))
    return joined


async def follow(
    store: TaskStore,
    bus: EventBus,
    task_id: str,
    after_seq: int = 0,
    poll_s: float = 0.25,
    *,
    tokens: bool = False,
) -> AsyncIterator[TaskEvent | Token]:
    """Yield the task's events after `after_seq`, in order, then live ones, until its result event.
    With `tokens`, also the live tokens published by this process, each in its place among them."""
    seq = after_seq
    # Subscribed before the first read: no wake-up is lost.
    with bus.subscribe(task_id, tokens=tokens) as listener:
        while True:
            listener.waiter.clear()
            # Tokens first, then the events: every event a token follows is stored by then.
            live = _coalesce(listener.take_tokens())
            batch = await store.events(task_id, seq)
            position = 0
            for event in batch:
                while position < len(live) and live[position].after_seq < event.seq:
                    yield live[position]
                    position += 1
                yield event
                seq = event.seq
                if event.type == RESULT_EVENT:
                    return
            for token in live[position:]:
                yield token
            if batch or live:
                continue
            try:
                async with asyncio.timeout(
                    poll_s
                ):  # not wait_for: it can drop a cancel (see queue)
                    await listener.waiter.wait()
            except TimeoutError:
                # Nothing new for a while: a client that reconnected after the end has seen it all.
                task = await store.get(task_id)
                if task is None or (task.status in FINAL_STATES and task.finished_at is not None
                                    and not await store.events(task_id, seq)):  # fmt: skip
                    return
