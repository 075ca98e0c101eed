"""The task queue: N task slots per orchestrator process claim tasks from the database.

PostgreSQL: the slots of several processes share one queue (FOR UPDATE SKIP LOCKED), each running task
is leased and the lease renewed by a heartbeat; a reaper re-queues tasks whose lease expired.
SQLite: one process only, enforced with a lock file next to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol

from sqlalchemy.engine import make_url

from anvyl.orchestrator.db.tables import Task
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.metrics import Metrics
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.store import TaskStore

log = get_logger(__name__)
StopReason = Literal["cancel", "timeout", "lease_lost", "shutdown"]
_HEARTBEAT_S = 0.5  # also how fast a cancel sent to any replica reaches the slot running the task


class QueueAlreadyRunning(RuntimeError):
    """A second process tried to run the queue of an SQLite database."""


@dataclass
class RunContext:
    """What the executor needs to know about the run it is doing."""

    task: Task
    owner: str
    timeout_s: float
    stop_reason: StopReason | None = None
    started: float = field(default_factory=time.perf_counter)


class Executor(Protocol):
    """What the queue calls to run a task (the executor)."""

    async def run(self, ctx: RunContext) -> None: ...


class SingleProcessLock:
    """An exclusive lock file beside an SQLite database: the embedded mode is one process."""

    def __init__(self, database_url: str) -> None:
        database = make_url(database_url).database or ""
        self.path = Path(f"{database}.queue.lock") if database and database != ":memory:" else None
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        if self.path is None:
            return
        self._file = self.path.open("w")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            self._file = None
            raise QueueAlreadyRunning(
                f"another orchestrator process already runs the queue of {self.path.with_suffix('')}: "
                "SQLite is the single-process embedded mode. Use PostgreSQL (ANVYL_DATABASE_URL) to run "
                "several orchestrator processes on one queue."
            ) from None
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class TaskQueue:
    def __init__(
        self, settings: Settings, store: TaskStore, executor: Executor, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.metrics = metrics
        self.owner = f"{socket.gethostname()[:30]}-{os.getpid()}-{secrets.token_hex(3)}"
        self.single_process = store.db.dialect == "sqlite"
        self._lock = (
            SingleProcessLock(settings.effective_database_url) if self.single_process else None
        )
        self._claim_lock = (
            asyncio.Lock()
        )  # SQLite has no SKIP LOCKED: claims in one process are serial
        # Wake-up tokens: one per new task (or freed workspace) wakes one idle slot; a token put
        # while every slot is busy waits for the next one that looks, so none is lost.
        self._wakeups: asyncio.Queue[None] = asyncio.Queue(
            maxsize=max(settings.max_concurrent_tasks, 1)
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, tuple[RunContext, asyncio.Task[None]]] = {}
        # Tells the other processes of a new task (PostgreSQL LISTEN/NOTIFY), so that an API-only
        # process's tasks start at once in a process with task slots instead of at its next poll.
        self.relay: Callable[[str | None], None] | None = None

    async def start(self) -> None:
        if self.settings.max_concurrent_tasks == 0 and self.single_process:
            raise ValueError(
                "ANVYL_MAX_CONCURRENT_TASKS=0 (an API-only process) needs PostgreSQL, where other "
                "processes run the tasks; with SQLite this process is the only one that can"
            )
        if self._lock is not None:
            self._lock.acquire()
            # One process: whatever is still active was orphaned by our previous process.
            requeued = await self.store.requeue_expired(
                self.settings.task_max_attempts, all_active=True
            )
            if requeued:
                log.info("queue.requeued_orphans", tasks=requeued)
        self._tasks = [asyncio.create_task(self._slot_loop(i), name=f"task-slot-{i}")
                       for i in range(self.settings.max_concurrent_tasks)]  # fmt: skip
        if not self.single_process:
            self._tasks.append(asyncio.create_task(self._reaper_loop(), name="reaper"))
        log.info("queue.started", owner=self.owner, task_slots=self.settings.max_concurrent_tasks)

    def enqueued(self, workspace_id: str | None) -> None:
        """A task was just queued by this process: wake a task slot here and in the other processes."""
        self.wake(workspace_id)
        if self.relay is not None:
            self.relay(workspace_id)

    def wake(self, workspace_id: str | None = None) -> None:
        """New work (or a freed workspace): let one idle slot look now instead of at its next poll.

        A new task of a workspace this process is running cannot start yet, and the slot that
        finishes the workspace's current task looks next anyway: no slot is woken for it. (With a
        backlog behind a busy workspace, every needless look is a scan of that backlog.)
        """
        if workspace_id is not None and workspace_id in self._busy_workspaces():
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._wakeups.put_nowait(None)

    def _busy_workspaces(self) -> set[str]:
        return {ctx.task.workspace_id for ctx, _ in self._running.values() if ctx.task.workspace_id}

    @property
    def running(self) -> int:
        return len(self._running)

    async def stop(self) -> None:
        """Stop claiming; put tasks in progress back in the queue for the next process."""
        for ctx, job in list(self._running.values()):
            ctx.stop_reason = "shutdown"
            job.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *(job for _, job in self._running.values()),
                             return_exceptions=True)  # fmt: skip
        self._tasks.clear()
        if self._lock is not None:
            self._lock.release()

    # Task slots -------------------------------------------------------------------------------

    async def _slot_loop(self, index: int) -> None:
        while True:
            try:
                task = await self._claim()
            except Exception:
                log.exception("queue.claim_failed", slot=index)
                task = None
                await asyncio.sleep(self.settings.queue_poll_s)
            if task is None:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancel that comes as
                # the wake-up arrives, and the slot then never stops (shutdown hung).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.queue_poll_s):
                        await self._wakeups.get()
                continue
            self.wake()  # there may be more: let another idle slot look
            await self._run(task)
            # The workspace is free: this slot looks again at once, so its next task starts.

    async def _claim(self) -> Task | None:
        if self.single_process:
            async with self._claim_lock:
                return await self.store.claim(self.owner, self.settings.task_lease_s)
        return await self.store.claim(self.owner, self.settings.task_lease_s)

    def _timeout(self, task: Task) -> float:
        wanted = task.timeout_s or self.settings.default_task_timeout_s
        return min(wanted, self.settings.max_task_timeout_s)

    async def _run(self, task: Task) -> None:
        ctx = RunContext(task=task, owner=self.owner, timeout_s=self._timeout(task))
        queued_for = (
            (ctx.task.started_at - ctx.task.created_at).total_seconds()
            if ctx.task.started_at
            else 0
        )
        self.metrics.queue_wait.observe(max(queued_for, 0.0))
        job = asyncio.create_task(self.executor.run(ctx), name=f"task-{task.id}")
        self._running[task.id] = (ctx, job)
        self.metrics.running.set(len(self._running))
        deadline = time.monotonic() + ctx.timeout_s
        try:
            while not job.done():
                done, _ = await asyncio.wait({job}, timeout=_HEARTBEAT_S)
                if done:
                    break
                if time.monotonic() >= deadline:
                    self._stop(ctx, job, "timeout")
                    continue
                try:
                    cancel = await self.store.heartbeat(
                        task.id, self.owner, self.settings.task_lease_s
                    )
                except Exception:
                    log.exception("queue.heartbeat_failed", task_id=task.id)
                    continue
                if cancel is None:
                    self._stop(ctx, job, "lease_lost")
                elif cancel:
                    self._stop(ctx, job, "cancel")
            with contextlib.suppress(asyncio.CancelledError):
                await job
        except asyncio.CancelledError:
            ctx.stop_reason = ctx.stop_reason or "shutdown"
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
            raise
        finally:
            self._running.pop(task.id, None)
            self.metrics.running.set(len(self._running))

    @staticmethod
    def _stop(ctx: RunContext, job: asyncio.Task[None], reason: StopReason) -> None:
        if ctx.stop_reason is None:
            ctx.stop_reason = reason
            job.cancel()

    async def _reaper_loop(self) -> None:
        interval = max(self.settings.task_lease_s / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                requeued = await self.store.requeue_expired(self.settings.task_max_attempts)
            except Exception:
                log.exception("queue.reaper_failed")
                continue
            if requeued:
                log.warning("queue.requeued_expired", tasks=requeued)
                self.wake()
