"""Running one task: workspace, then the agent (the built-in planner for now), then the stored result."""

from __future__ import annotations

import time
from typing import Any

from anvyl.agent.client import WorkerError
from anvyl.orchestrator import planner
from anvyl.orchestrator.db.tables import utcnow
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.store import FAILED, RUNNING, SUCCEEDED, TaskStore
from anvyl.orchestrator.tools import WorkspaceTools
from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.orchestrator.workspaces.manager import ActiveWorkspace, WorkspaceManager
from anvyl.orchestrator.workspaces.repos import InvalidRepository, parse_repo

log = get_logger(__name__)


class TaskEvents:
    """Numbers a task's events (seq, also the SSE id) and stores each one as it happens."""

    def __init__(self, store: TaskStore, task_id: str, last_seq: int) -> None:
        self.store = store
        self.task_id = task_id
        self.seq = last_seq

    async def emit(self, type_: str, data: dict[str, Any]) -> None:
        self.seq += 1
        await self.store.add_event(self.task_id, self.seq, type_, data)


class TaskExecutor:
    def __init__(self, settings: Settings, store: TaskStore, workspaces: WorkspaceManager) -> None:
        self.settings = settings
        self.store = store
        self.workspaces = workspaces

    async def run(self, task_id: str) -> None:
        task = await self.store.get(task_id)
        if task is None:
            raise LookupError(f"task {task_id} not found")
        events = TaskEvents(self.store, task_id, await self.store.last_seq(task_id))
        started = time.perf_counter()
        await self.store.update(
            task_id, status=RUNNING, started_at=utcnow(), attempts=task.attempts + 1
        )
        await events.emit("status", {"status": RUNNING})
        bound = log.bind(task_id=task_id, workspace_id=task.workspace_id)
        try:
            repo = parse_repo(task.repo_url or "")
            async with self.workspaces.acquire(repo, events.emit) as workspace:
                answer, metadata = await self._answer(task.query, workspace, events)
        except (WorkspaceError, WorkerError, InvalidRepository, planner.PlannerCannotAnswer) as exc:
            await self._finish(task_id, events, FAILED, error=str(exc), started=started)
            bound.info("task.failed", error=str(exc))
            return
        except Exception as exc:
            bound.exception("task.crashed")
            await self._finish(
                task_id, events, FAILED, error=f"internal error: {exc!r}", started=started
            )
            return
        await self._finish(
            task_id, events, SUCCEEDED, result=answer, metadata=metadata, started=started
        )
        bound.info("task.succeeded", latency_s=metadata["latency_s"])

    async def _answer(
        self, query: str, workspace: ActiveWorkspace, events: TaskEvents
    ) -> tuple[str, dict[str, Any]]:
        """The agent step. The model router and its tool loop plug in here; the planner is the last link."""
        started = time.perf_counter()
        tools = WorkspaceTools(workspace.client, self.settings.tool_timeout_s)
        planned = planner.plan(query)
        await events.emit("tool.call", {"name": planned.tool, "arguments": planned.arguments})
        call = await tools.call(planned.tool, planned.arguments)
        await events.emit(
            "tool.result",
            {"name": call.name, "ok": call.ok, "error": call.error, "duration_s": call.duration_s},
        )
        if not call.ok:
            raise WorkspaceError(f"tool {call.name} failed: {call.error}")
        answer = planner.write_answer(call, workspace.repo.display_url)
        metadata: dict[str, Any] = {
            "backend": planner.BACKEND_NAME,
            "model": None,
            "model_used": False,
            "latency_s": round(time.perf_counter() - started, 6),
            "usage": {"prompt_tokens": 0, "completion_tokens": 0},
            "cost_usd": 0.0,
            "tool_calls": [call.model_dump(exclude={"output"})],
            "workspace": {
                "id": workspace.id,
                "backend": workspace.backend,
                "reused": workspace.reused,
                "head": workspace.sync.head,
            },
        }
        return answer, metadata

    async def _finish(
        self,
        task_id: str,
        events: TaskEvents,
        status: str,
        *,
        started: float,
        result: str | None = None,
        error: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        meta = dict(metadata or {})
        meta["duration_s"] = round(time.perf_counter() - started, 6)
        await self.store.update(
            task_id, status=status, result=result, error=error, meta=meta, finished_at=utcnow()
        )
        await events.emit("status", {"status": status, "error": error, "result": result})
