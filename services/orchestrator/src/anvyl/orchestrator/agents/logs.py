"""`GET /agents/NAME/logs`: the events of an agent's tasks and its worker's log lines, as SSE
messages. Without follow it ends after the backlog (the last `tail` of each); with follow it polls
for more until the client goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from anvyl.orchestrator.tasks.store import TaskStore
from anvyl.orchestrator.workspaces.base import WorkspaceBackend

POLL_S = 0.5
_TASKS_LOOKED_AT = 50  # the agent's most recent tasks, for the backlog and while following


class _TaskEvents:
    def __init__(self, store: TaskStore, workspace_id: str) -> None:
        self.store = store
        self.workspace_id = workspace_id
        self.seen: dict[str, int] = {}  # task id -> last seq sent

    async def new(self) -> list[dict[str, Any]]:
        tasks = await self.store.list_tasks(status=None, workspace_id=self.workspace_id,
                                            limit=_TASKS_LOOKED_AT, offset=0)  # fmt: skip
        found = []
        for task in reversed(tasks):  # oldest first
            for event in await self.store.events(task.id, self.seen.get(task.id, 0)):
                found.append({"task_id": task.id, "seq": event.seq, "type": event.type,
                              "data": event.data})  # fmt: skip
                self.seen[task.id] = event.seq
        return found


class _LogLines:
    """New lines of the worker's log, read as its last lines each time (a backend gives no cursor):
    the lines after the last ones already sent."""

    def __init__(self, backend: WorkspaceBackend, workspace_id: str) -> None:
        self.backend = backend
        self.workspace_id = workspace_id
        self.sent: list[str] = []

    async def new(self, lines: int) -> list[str]:
        text = await self.backend.logs(self.workspace_id, lines=lines)
        current = text.splitlines()
        anchor = self.sent[-5:]
        start = 0
        if anchor:
            for index in range(len(current) - len(anchor), -1, -1):
                if current[index : index + len(anchor)] == anchor:
                    start = index + len(anchor)
                    break
        fresh = current[start:]
        self.sent = (self.sent + fresh)[-5:]
        return fresh


async def agent_logs(
    store: TaskStore, backend: WorkspaceBackend, workspace_id: str, *, follow: bool, tail: int
) -> AsyncIterator[dict[str, str]]:
    events = _TaskEvents(store, workspace_id)
    lines = _LogLines(backend, workspace_id)
    for event in (await events.new())[-tail:] if tail else []:
        yield {"event": "task", "data": json.dumps(event, default=str)}
    for line in await lines.new(tail) if tail else []:
        yield {"event": "log", "data": json.dumps({"line": line})}
    if tail == 0:  # nothing of the backlog: mark everything so far as sent
        await events.new()
        await lines.new(200)
    while follow:
        await asyncio.sleep(POLL_S)
        for event in await events.new():
            yield {"event": "task", "data": json.dumps(event, default=str)}
        for line in await lines.new(200):
            yield {"event": "log", "data": json.dumps({"line": line})}
