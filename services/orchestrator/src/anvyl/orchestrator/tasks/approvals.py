"""Human approval of tool calls: the task waits in `waiting_approval` until a decision is recorded.

The decision is an event written by POST /tasks/{id}/approve|reject on any replica; the task slot
finds it through the event bus (same replica) or by polling (another one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from anvyl.orchestrator.llm import ToolCall as ModelToolCall
from anvyl.orchestrator.tasks.bus import EventBus
from anvyl.orchestrator.tasks.states import RUNNING, WAITING_APPROVAL
from anvyl.orchestrator.tasks.store import TaskStore

DECISION_EVENT = "approval"
_POLL_S = 0.25


class LeaseLost(RuntimeError):
    """The task is no longer this slot's (another replica took it over)."""


class TaskApprovals:
    def __init__(
        self,
        store: TaskStore,
        bus: EventBus,
        task_id: str,
        owner: str,
        flush_events: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.bus = bus
        self.task_id = task_id
        self.owner = owner
        self.flush_events = flush_events  # the step events so far go before the status change

    async def ask(self, call: ModelToolCall, reason: str) -> tuple[bool, str | None]:
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = call.arguments
        pending = {"call_id": call.id, "tool": call.name, "arguments": arguments, "reason": reason}
        await self.flush_events()
        seen = await self.store.last_seq(self.task_id)
        if not await self.store.set_status(
            self.task_id, self.owner, WAITING_APPROVAL, {"pending": pending}
        ):
            raise LeaseLost(self.task_id)
        approved, note = await self._decision(call.id, seen)
        if not await self.store.set_status(self.task_id, self.owner, RUNNING,
                                           {"call_id": call.id, "approved": approved}):  # fmt: skip
            raise LeaseLost(self.task_id)
        return approved, note

    async def _decision(self, call_id: str, after_seq: int) -> tuple[bool, str | None]:
        while True:
            with self.bus.listen(self.task_id) as waiter:
                for event in await self.store.events(self.task_id, after_seq):
                    after_seq = event.seq
                    if event.type == DECISION_EVENT and event.data.get("call_id") == call_id:
                        return bool(event.data.get("approved")), event.data.get("note")
                with contextlib.suppress(
                    TimeoutError
                ):  # asyncio.timeout keeps a cancel (see queue)
                    async with asyncio.timeout(_POLL_S):
                        await waiter.wait()
