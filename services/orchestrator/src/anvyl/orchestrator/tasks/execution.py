"""Running one task: its workspace, then the agent loop (or the built-in planner), then the result."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from collections.abc import Sequence
from typing import Any

from anvyl.orchestrator.db.tables import Task, utcnow
from anvyl.orchestrator.llm import AllModelsFailed, ModelError, ModelRouter, NoModelConfigured
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.loop import planner
from anvyl.orchestrator.loop.agent_loop import AgentLoop, AgentStopped, Limits, TaskPolicy
from anvyl.orchestrator.loop.mcp_client import McpToolbox
from anvyl.orchestrator.loop.prompts import summary_for_memory, system_prompt
from anvyl.orchestrator.loop.tools import Toolset, ToolSource, WorkspaceTools
from anvyl.orchestrator.memory.base import Memory
from anvyl.orchestrator.memory.records import TaskMemory
from anvyl.orchestrator.memory.tool import search_knowledge_tool
from anvyl.orchestrator.metrics import Metrics
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.agent_runs import AgentProfiles, AgentRun, AgentUnavailable
from anvyl.orchestrator.tasks.approvals import LeaseLost, TaskApprovals
from anvyl.orchestrator.tasks.bus import EventBus, Token
from anvyl.orchestrator.tasks.inputs import TaskFiles, create_scratch_repo
from anvyl.orchestrator.tasks.queue import RunContext
from anvyl.orchestrator.tasks.states import CANCELLED, FAILED, SUCCEEDED, Event
from anvyl.orchestrator.tasks.store import TaskStore
from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.orchestrator.workspaces.manager import ActiveWorkspace, WorkspaceManager
from anvyl.orchestrator.workspaces.repos import InvalidRepository, parse_repo
from anvyl.worker.client import WorkerError

log = get_logger(__name__)
# Failures that end a task with a clear message (anything else is an internal error).
_TASK_ERRORS = (WorkspaceError, WorkerError, InvalidRepository, planner.PlannerCannotAnswer,
                AgentStopped, ModelError, AgentUnavailable)  # fmt: skip


class TaskEvents:
    """A task's step events, written in order by one writer task, in batches, while the task goes on.

    The loop does not wait for each write (a write is a transaction: milliseconds on SQLite). Anything
    that changes the task's status first calls `flush`, so the stored order is the order of events;
    the task's end calls `drain` instead and stores the last events with its result.

    Tokens (live model output, never stored) go to this process's streams once every event emitted
    before them is stored, stamped with that event's seq, so that a stream places each token after
    the steps it follows; until then they are held here.
    """

    def __init__(self, store: TaskStore, bus: EventBus, task_id: str, stored_seq: int = 0) -> None:
        self.store = store
        self.bus = bus
        self.task_id = task_id
        self._pending: list[Event] = []
        self._writer: asyncio.Task[None] | None = None
        self._drained = False
        self._stored_seq = stored_seq  # the seq of the task's last stored event known here
        self._emitted = 0  # events emitted by this run
        self._written = 0  # of those, stored
        self._held: list[tuple[int, Token]] = []  # (events emitted before it, token)

    async def emit(self, type_: str, data: dict[str, Any]) -> None:
        if self._drained:  # the result event is the last one; a late step cannot follow it
            log.warning("task.event_after_end", task_id=self.task_id, type=type_)
            return
        self._pending.append((type_, data, utcnow()))  # stamped when it happened, stored soon after
        self._emitted += 1
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name=f"events-{self.task_id}")

    async def _write(self) -> None:
        while self._pending and not self._drained:
            batch, self._pending = self._pending, []
            self._stored_seq = await self.store.add_events(self.task_id, batch)
            self._written += len(batch)
            if self._held:
                self._release_held()

    def token(self, step: int, kind: str, text: str) -> None:
        """A piece of live model output (the agent loop's `on_delta`): for streams only."""
        if not self.bus.wants_tokens(self.task_id) or self._drained:
            return
        if self._written == self._emitted:
            self.bus.publish_token(self.task_id, Token(self._stored_seq, step, kind, text))
        else:
            self._held.append((self._emitted, Token(0, step, kind, text)))

    def _release_held(self) -> None:
        while self._held and self._held[0][0] <= self._written:
            needs, token = self._held.pop(0)
            # A batch's seqs are consecutive, so the seq of the event it follows is known.
            token.after_seq = self._stored_seq - (self._written - needs)
            self.bus.publish_token(self.task_id, token)

    async def drain(self) -> list[Event]:
        """Wait for the batch being written, then hand over the events not stored yet, for the
        caller to store in the transaction that ends the task (one transaction instead of two).
        Nothing can be emitted after this."""
        self._drained = True
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        pending, self._pending = self._pending, []
        return pending

    async def flush(self) -> None:
        """Wait until every event emitted so far is stored (also when the caller is being cancelled)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        if self._pending:  # emitted after the writer's last batch
            self._writer = asyncio.create_task(self._write())
            await asyncio.shield(self._writer)


class TaskExecutor:
    def __init__(
        self,
        settings: Settings,
        store: TaskStore,
        workspaces: WorkspaceManager,
        bus: EventBus,
        metrics: Metrics,
        router: ModelRouter | None = None,
        mcp: McpToolbox | None = None,
        agents: AgentProfiles | None = None,
        memory: Memory | None = None,
        tool_sources: Sequence[ToolSource] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.workspaces = workspaces
        self.bus = bus
        self.metrics = metrics
        self.router = router
        self.mcp = mcp or McpToolbox([])
        self.agents = agents
        self.tool_sources = tuple(tool_sources)
        self.memory = memory
        self.limits = Limits(
            settings.agent_max_steps,
            settings.agent_max_tokens,
            settings.tool_output_chars,
            temperature=settings.agent_temperature,
            max_output_tokens=settings.agent_max_output_tokens,
        )

    async def run(self, ctx: RunContext) -> None:
        task = ctx.task
        events = TaskEvents(self.store, self.bus, task.id, stored_seq=task.event_seq)
        bound = log.bind(task_id=task.id, workspace_id=task.workspace_id, attempt=task.attempts)
        try:
            answer, metadata = await self._execute(ctx, events)
        except asyncio.CancelledError:
            await self._stopped(ctx, events)
            return
        except LeaseLost:
            # Another replica owns the task now: the events not stored yet are not ours to add.
            await events.drain()
            return
        except _TASK_ERRORS as exc:
            bound.info("task.failed", error=str(exc))
            await self._finish(ctx, events, FAILED, error=str(exc))
            return
        except Exception as exc:
            bound.exception("task.crashed")
            await self._finish(ctx, events, FAILED, error=f"internal error: {exc!r}")
            return
        bound.info("task.succeeded", backend=metadata["backend"], latency_s=metadata["latency_s"])
        await self._finish(ctx, events, SUCCEEDED, result=answer, metadata=metadata)

    async def _execute(self, ctx: RunContext, events: TaskEvents) -> tuple[str, dict[str, Any]]:
        task = ctx.task
        files = TaskFiles.of(task.request)
        agent = await self._agent_run(task)
        if agent is not None or task.repo_url:
            # A named agent works in its own workspace (its id, its worker's label).
            own = agent.repo if agent is not None else parse_repo(task.repo_url or "")
            async with self.workspaces.acquire(own, events.emit) as workspace:
                await files.place(workspace.client)
                return await self._answer(ctx, events, workspace, files, agent)
        if not files.uploads:
            return await self._answer(ctx, events, None, files)
        # Uploaded files and no repository: a scratch workspace, removed when the task ends.
        scratch = self.settings.data_dir / "scratch" / task.id
        repo = None
        try:
            repo = parse_repo(str(await create_scratch_repo(scratch)))
            async with self.workspaces.acquire(repo, events.emit) as workspace:
                await files.place(workspace.client)
                return await self._answer(ctx, events, workspace, files)
        finally:
            if repo is not None:
                # A failed removal is logged, not raised: the janitor removes it later, and the
                # task keeps its own end.
                try:
                    await asyncio.shield(self.workspaces.remove(repo.workspace_id, purge=True))
                except WorkspaceError as exc:
                    log.warning("scratch.remove_failed", task_id=task.id, error=str(exc))
            shutil.rmtree(scratch, ignore_errors=True)

    async def _agent_run(self, task: Task) -> AgentRun | None:
        name = (task.request or {}).get("agent")
        if name is None:
            return None
        if self.agents is None:
            raise AgentUnavailable(f"agent {name!r}: this orchestrator runs no agents")
        return await self.agents.for_task(name)

    async def _answer(
        self,
        ctx: RunContext,
        events: TaskEvents,
        workspace: ActiveWorkspace | None,
        files: TaskFiles,
        agent: AgentRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        task = ctx.task
        started = time.perf_counter()
        tools = (
            WorkspaceTools(workspace.client, self.settings.tool_timeout_s).tools()
            if workspace
            else []
        )
        if self.memory is not None and self._memory_on(task):
            tools.append(search_knowledge_tool(self.memory, workspace_id=workspace.id if workspace else None,
                                               agent=agent.name if agent else None))  # fmt: skip
        extra = [
            tool for source in self.tool_sources for tool in source.tools_for(task.request or {})
        ]
        toolset = Toolset([*tools, *self.mcp.tools(), *extra])
        base: dict[str, Any] = {}
        if workspace is not None:
            base["workspace"] = {"id": workspace.id, "backend": workspace.backend,
                                 "reused": workspace.reused, "head": workspace.sync.head}  # fmt: skip
        if agent is not None:
            base["agent"] = agent.name
        # The user's settings as they were at enqueue (api/tasks.py): the preference and the
        # default agent or model the task got; `order` is the model chain it ran on.
        base["settings"] = dict((task.request or {}).get("settings") or {"preference": "auto"})
        if forwarded := (task.request or {}).get("forwarded"):  # a query another host sent on
            base["forwarded"] = forwarded
        models_note = None
        if self.router is not None or agent is not None:
            try:
                return await self._agent(
                    ctx, events, workspace, toolset, base, started, files, agent
                )
            except NoModelConfigured:
                pass
            except AllModelsFailed as exc:  # at the first turn: the planner is the last link
                models_note = f"The configured models could not be reached: {exc}"
                await events.emit("model.unavailable", {"error": str(exc)})
        where = workspace.repo.display_url if workspace else "this host"
        planned = planner.plan(task.query, toolset.names)
        await events.emit("tool.call", {"name": planned.tool, "arguments": planned.arguments})
        call = await toolset.call(planned.tool, planned.arguments)
        await events.emit("tool.result", {"name": call.name, "ok": call.ok, "error": call.error,
                                          "duration_s": call.duration_s, "output": call.output[:2000]})  # fmt: skip
        if not call.ok:
            raise WorkspaceError(f"tool {call.name} failed: {call.error}")
        answer = planner.write_answer(call, where, models_note)
        return answer, base | {
            "backend": planner.BACKEND_NAME, "model": None, "model_used": False,
            "latency_s": round(time.perf_counter() - started, 6),
            "usage": {"prompt_tokens": 0, "completion_tokens": 0}, "cost_usd": 0.0,
            "model_calls": [], "tool_calls": [call.model_dump(exclude={"output"})],
            "summary": summary_for_memory(task.query, answer),
        }  # fmt: skip

    async def _agent(
        self,
        ctx: RunContext,
        events: TaskEvents,
        workspace: ActiveWorkspace | None,
        toolset: Toolset,
        base: dict[str, Any],
        started: float,
        files: TaskFiles,
        agent: AgentRun | None,
    ) -> tuple[str, dict[str, Any]]:
        task: Task = ctx.task
        limits = self.limits
        if agent is not None and agent.max_steps is not None:
            limits = dataclasses.replace(limits, max_steps=agent.max_steps)
        request = task.request or {}
        query = f"{task.query}\n\n{files.note()}" if files else task.query
        memory = await self._recall(task, workspace, agent)
        prompt = system_prompt(
            repo=workspace.repo.display_url if workspace else None,
            workspace_id=workspace.id if workspace else None, toolset=toolset,
            max_steps=limits.max_steps, timeout_s=ctx.timeout_s, memory=memory,
        )  # fmt: skip
        if agent is not None and agent.system_prompt:
            prompt = f"{prompt}\n\n{agent.system_prompt}"
        policy = TaskPolicy.model_validate(request.get("policy") or {})
        if agent is not None and request.get("policy") is None:
            policy = agent.policy
        router = agent.router if agent is not None else self.router
        assert router is not None
        if agent is None:  # an agent's own chain keeps its order (its provider, then its backups)
            router = router.ordered(base["settings"].get("preference", "auto"))
        router = router.preferring(request.get("model"))
        base["settings"]["order"] = [endpoint.name for endpoint in router.endpoints]
        result = await AgentLoop(router, limits, on_delta=events.token).run(
            system_prompt=prompt, query=query, toolset=toolset, emit=events.emit,
            approvals=TaskApprovals(self.store, self.bus, task.id, ctx.owner, events.flush), policy=policy,
        )  # fmt: skip
        last = result.model_calls[-1]
        return result.answer, base | {
            "backend": last["provider"], "provider": last["provider"], "endpoint": last["endpoint"],
            "model": last["model"],
            "model_used": True, "latency_s": round(time.perf_counter() - started, 6), "steps": result.steps,
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens},
            "cost_usd": round(result.cost, 6), "model_calls": result.model_calls,
            "tool_calls": [c.model_dump(exclude={"output"}) for c in result.tool_calls],
            "summary": summary_for_memory(task.query, result.answer),
        }  # fmt: skip

    @staticmethod
    def _memory_on(task: Task) -> bool:
        """The user's `memory_enabled` setting as it was when the task was enqueued."""
        return bool(((task.request or {}).get("settings") or {}).get("memory_enabled", True))

    async def _recall(
        self, task: Task, workspace: ActiveWorkspace | None, agent: AgentRun | None
    ) -> list[str]:
        """The earlier tasks of this workspace (or agent) most relevant to the query."""
        query = task.query
        if (
            self.memory is None
            or not self._memory_on(task)
            or self.settings.memory_recall == 0
            or (workspace is None and agent is None)
        ):
            return []
        try:
            hits = await self.memory.search(query, scope="tasks", workspace_id=workspace.id if workspace else None,
                                            agent=agent.name if agent else None,
                                            limit=self.settings.memory_recall)  # fmt: skip
        except Exception as exc:  # memory helps; its failure must not fail the task
            log.warning("memory.recall_failed", error=str(exc))
            return []
        return [hit.text for hit in hits]

    async def _remember(self, task: Task, metadata: dict[str, Any]) -> None:
        summary = metadata.get("summary")
        if self.memory is None or not summary or not self._memory_on(task):
            return
        workspace = metadata.get("workspace") or {}
        try:
            await self.memory.remember_task(TaskMemory(task_id=task.id, text=summary,
                                                       workspace_id=workspace.get("id"),
                                                       agent=metadata.get("agent")))  # fmt: skip
        except Exception as exc:
            log.warning("memory.remember_failed", task_id=task.id, error=str(exc))

    async def _stopped(self, ctx: RunContext, events: TaskEvents) -> None:
        reason = ctx.stop_reason
        if reason == "cancel":
            await self._finish(ctx, events, CANCELLED, error="cancelled by request")
        elif reason == "timeout":
            await self._finish(ctx, events, FAILED, error=f"timed out after {ctx.timeout_s:g}s")
        elif reason == "shutdown":
            await events.flush()
            await self.store.release(ctx.task.id, ctx.owner)
        else:  # lease_lost: another replica re-queued the task and owns it; nothing is ours to write
            await events.drain()

    async def _finish(
        self,
        ctx: RunContext,
        events: TaskEvents,
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
        steps = await events.drain()  # first: the steps not stored yet go with the finish
        if status == SUCCEEDED:
            # Before the status: a client that reads "succeeded" finds the task in memory (a search,
            # the next task's recall, a forget). A run that then loses its lease leaves the summary
            # to the run that takes over, which replaces it.
            await self._remember(ctx.task, meta)
        if await self.store.finish(ctx.task.id, status, owner=ctx.owner, result=result, error=error,
                                   metadata=meta, steps=steps):  # fmt: skip
            self.metrics.finished.labels(status=status).inc()
            self.metrics.duration.labels(status=status).observe(duration)
