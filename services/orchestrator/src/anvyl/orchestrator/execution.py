"""Running one task: workspace, then the agent (the built-in planner for now), then the stored result."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from anvyl.agent.client import WorkerError
from anvyl.orchestrator import planner
from anvyl.orchestrator.events import EventBus
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.metrics import Metrics
from anvyl.orchestrator.queue import RunContext
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.store import CANCELLED, FAILED, SUCCEEDED, TaskStore
from anvyl.orchestrator.tools import WorkspaceTools
from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.orchestrator.workspaces.manager import ActiveWorkspace, WorkspaceManager
from anvyl.orchestrator.workspaces.repos import InvalidRepository, parse_repo

log = get_logger(__name__)


class TaskEvents:
    """Stores a task's events as they happen (numbered by the store) and wakes its live streams."""

    def __init__(self, store: TaskStore, bus: EventBus, task_id: str) -> None:
        self.store = store
        self.bus = bus
        self.task_id = task_id

    async def emit(self, type_: str, data: dict[str, Any]) -> None:
        await self.store.add_event(self.task_id, type_, data)
        self.bus.notify(self.task_id)


class TaskExecutor:
    def __init__(
        self,
        settings: Settings,
        store: TaskStore,
        workspaces: WorkspaceManager,
        bus: EventBus,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.store = store
        self.workspaces = workspaces
        self.bus = bus
        self.metrics = metrics

    async def run(self, ctx: RunContext) -> None:
        task = ctx.task
        events = TaskEvents(self.store, self.bus, task.id)
        bound = log.bind(task_id=task.id, workspace_id=task.workspace_id, attempt=task.attempts)
        self.bus.notify(task.id)  # the claim wrote the "running" event
        try:
            answer, metadata = await self._execute(task.query, task.repo_url, events)
        except asyncio.CancelledError:
            await self._stopped(ctx)
            return
        except (WorkspaceError, WorkerError, InvalidRepository, planner.PlannerCannotAnswer) as exc:
            bound.info("task.failed", error=str(exc))
            await self._finish(ctx, FAILED, error=str(exc))
            return
        except Exception as exc:
            bound.exception("task.crashed")
            await self._finish(ctx, FAILED, error=f"internal error: {exc!r}")
            return
        bound.info("task.succeeded", latency_s=metadata["latency_s"])
        await self._finish(ctx, SUCCEEDED, result=answer, metadata=metadata)

    async def _execute(
        self, query: str, repo_url: str | None, events: TaskEvents
    ) -> tuple[str, dict[str, Any]]:
        if not repo_url:
            raise planner.PlannerCannotAnswer(
                "this task names no repository, and without a model only repository requests "
                f"can be answered ({planner.CAPABILITIES})"
            )
        repo = parse_repo(repo_url)
        async with self.workspaces.acquire(repo, events.emit) as workspace:
            return await self._answer(query, workspace, events)

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

    async def _stopped(self, ctx: RunContext) -> None:
        reason = ctx.stop_reason
        if reason == "cancel":
            await self._finish(ctx, CANCELLED, error="cancelled by request")
        elif reason == "timeout":
            await self._finish(ctx, FAILED, error=f"timed out after {ctx.timeout_s:g}s")
        elif reason == "shutdown":
            await self.store.release(ctx.task.id, ctx.owner)
            self.bus.notify(ctx.task.id)
        # lease_lost: another replica re-queued the task and owns it now; nothing is ours to write.

    async def _finish(
        self,
        ctx: RunContext,
        status: str,
        *,
        result: str | None = None,
        error: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        duration = time.perf_counter() - ctx.started
        meta = dict(metadata or {}) | {
            "duration_s": round(duration, 6),
            "attempt": ctx.task.attempts,
        }
        if await self.store.finish(ctx.task.id, status, owner=ctx.owner, result=result, error=error,
                                   metadata=meta):  # fmt: skip
            self.metrics.finished.labels(status=status).inc()
            self.metrics.duration.labels(status=status).observe(duration)
        self.bus.notify(ctx.task.id)
