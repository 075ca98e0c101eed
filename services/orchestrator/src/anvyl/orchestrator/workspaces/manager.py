"""The workspace manager: maps a repository to its worker, keeps it warm, restarts it when dead.

Tasks of one workspace run one at a time (a lock per workspace); different workspaces run in parallel.
A workspace's row says where it lives and whether its worker was stopped or removed; whether it is
busy and when it was last used are read from its tasks, so a task costs the row no write (only the
first task a process runs in a workspace registers it).

With a snapshot bucket (docker and local backends), a known workspace whose files are missing on
this host (another host ran it, or this one lost its disk) is restored from its latest snapshot
when its worker starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Row

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import utcnow
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.workspaces.base import (
    OwnedWorker,
    WorkerEndpoint,
    WorkspaceBackend,
    WorkspaceError,
)
from anvyl.orchestrator.workspaces.config import BackendContext, WorkspaceSettings
from anvyl.orchestrator.workspaces.registry import get_backend
from anvyl.orchestrator.workspaces.repos import RepoRef
from anvyl.orchestrator.workspaces.rows import WorkspaceRows
from anvyl.orchestrator.workspaces.snapshots import (
    SnapshotInfo,
    SnapshotNotFound,
    SnapshotStore,
    SnapshotsUnavailable,
    new_snapshot_store,
)
from anvyl.worker.client import WorkerClient, WorkerError, WorkerUnreachable
from anvyl.worker.models import GitCloneRequest, GitCloneResult

log = get_logger(__name__)
_RECENTLY_ANSWERED_S = 5.0  # a worker that answered this recently is not probed before a task
_REUSED_ANSWER_S = 3.0  # a worker the backend reports running answers within this, or is replaced
EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]


class TaskActivity(Protocol):
    """What the workspaces need to know of the tasks; the tasks package (its store) answers."""

    async def workspace_activity(self) -> tuple[set[str], dict[str, datetime]]:
        """The workspaces with an active task, and when each workspace's last task ended."""
        ...

    async def has_active_task(self, workspace_id: str) -> bool: ...


class WorkspaceBusy(WorkspaceError):
    """The workspace is running a task and cannot be removed now."""


@dataclass(frozen=True)
class WorkspaceInfo:
    id: str
    repo_url: str
    backend: str
    status: str  # idle, busy (running a task), stopped, removed
    running: bool
    handle: str | None
    created_at: datetime
    last_used_at: datetime


@dataclass
class ActiveWorkspace:
    """A healthy worker with the repository checked out, held for one task."""

    id: str
    repo: RepoRef
    client: WorkerClient
    backend: str
    reused: bool
    sync: GitCloneResult


class WorkspaceNotFound(WorkspaceError):
    """No workspace with that id."""


def create_backend(settings: WorkspaceSettings) -> WorkspaceBackend:
    """The backend `settings.workspace` describes (auto: docker when a daemon answers, else local)."""
    return get_backend(settings.workspace, BackendContext(settings.instance, settings.data_dir))


def _checkout_failed(repo: RepoRef, error: WorkerError) -> WorkspaceError:
    return WorkspaceError(f"cannot check out {repo.display_url}: {error}")


class WorkspaceManager:
    def __init__(
        self,
        settings: WorkspaceSettings,
        db: Database,
        backend: WorkspaceBackend,
        tasks: TaskActivity,
    ) -> None:
        self.settings = settings
        self.rows = WorkspaceRows(db)
        self.backend = backend
        self.tasks = tasks
        self._locks: dict[str, asyncio.Lock] = {}
        self._clients: dict[str, tuple[WorkerEndpoint, WorkerClient]] = {}
        self.snapshots: SnapshotStore | None = None
        self.snapshots_off = ""  # why there are none, when there are none
        try:
            self.snapshots = new_snapshot_store(settings, backend)
        except SnapshotsUnavailable as exc:
            self.snapshots_off = str(exc)

    @asynccontextmanager
    async def acquire(self, repo: RepoRef, emit: EventSink) -> AsyncIterator[ActiveWorkspace]:
        lock = self._locks.setdefault(repo.workspace_id, asyncio.Lock())
        async with lock:
            known = repo.workspace_id in self._clients  # registered by this process, worker live
            client, reused, sync = await self._checked_out(repo, emit)
            await emit("workspace.synced", {"action": sync.action, "head": sync.head})
            if not known:
                await self.rows.register(repo.workspace_id, repo.display_url, self.backend.name)
            yield ActiveWorkspace(repo.workspace_id, repo, client, self.backend.name, reused, sync)

    async def _checked_out(
        self, repo: RepoRef, emit: EventSink
    ) -> tuple[WorkerClient, bool, GitCloneResult]:
        """A healthy worker with the repository fetched: (client, reused, the checkout)."""
        request = GitCloneRequest(url=self.backend.clone_url(repo))
        cached = self._clients.get(repo.workspace_id)
        if cached is not None and cached[1].answered_within(_RECENTLY_ANSWERED_S):
            # It answered moments ago (the workspace's previous task): the checkout is the health
            # check, which saves a round trip per task; if it is gone, start it as below.
            client = cached[1]
            try:
                sync = await client.git_clone(request)
            except WorkerUnreachable:
                log.warning("workspace.unhealthy", workspace_id=repo.workspace_id)
                await self._forget(repo.workspace_id)
            except WorkerError as exc:
                raise _checkout_failed(repo, exc) from exc
            else:
                await emit("workspace.ready", {"workspace_id": repo.workspace_id, "reused": True})
                return client, True, sync
        client, reused = await self._healthy_worker(repo, emit)
        try:
            return client, reused, await client.git_clone(request)
        except WorkerError as exc:
            raise _checkout_failed(repo, exc) from exc

    async def _healthy_worker(self, repo: RepoRef, emit: EventSink) -> tuple[WorkerClient, bool]:
        cached = self._clients.get(repo.workspace_id)
        if cached is not None:
            endpoint, client = cached
            try:
                await client.health(timeout=2.0)
                await emit("workspace.ready", {"workspace_id": repo.workspace_id, "reused": True})
                return client, True
            except WorkerError:
                log.warning("workspace.unhealthy", workspace_id=repo.workspace_id)
                await self._forget(repo.workspace_id)
        started = time.perf_counter()
        missing = await self._files_missing(repo.workspace_id)  # before the backend makes them
        endpoint = await self.backend.ensure_running(repo)
        client = self.backend.worker_client(endpoint)
        if not endpoint.started and not await self._answers(client):
            # The backend still saw a worker that no longer answers (it was dying as the backend
            # looked: a killed process closes its port before it is a zombie): start a new one
            # rather than wait the whole start timeout for the dead one.
            log.warning("workspace.stale_worker", workspace_id=repo.workspace_id)
            await client.aclose()
            await self.backend.stop(repo.workspace_id)
            endpoint = await self.backend.ensure_running(repo)
            client = self.backend.worker_client(endpoint)
        try:
            await self._wait_healthy(client, repo.workspace_id)
            if missing:
                await self._restore_missing(repo.workspace_id, emit)
        except BaseException:
            await client.aclose()
            raise
        self._clients[repo.workspace_id] = (endpoint, client)
        await emit(
            "workspace.ready",
            {
                "workspace_id": repo.workspace_id,
                "reused": not endpoint.started,
                "backend": self.backend.name,
                "start_s": round(time.perf_counter() - started, 4),
            },
        )
        return client, not endpoint.started

    @staticmethod
    async def _answers(client: WorkerClient, within_s: float = _REUSED_ANSWER_S) -> bool:
        """Whether a worker the backend reports running answers /health within `within_s`."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                await client.health(timeout=1.0)
                return True
            except WorkerError:
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.05)

    async def _wait_healthy(self, client: WorkerClient, workspace_id: str) -> None:
        deadline = time.monotonic() + self.settings.worker_start_timeout_s
        delay = 0.005
        while True:
            try:
                await client.health(timeout=1.0)
                return
            except WorkerError as exc:
                if time.monotonic() > deadline:
                    logs = await self.backend.logs(workspace_id, lines=20)
                    raise WorkspaceError(
                        f"worker of workspace {workspace_id} not healthy after "
                        f"{self.settings.worker_start_timeout_s:.0f}s: {exc}; last log lines:\n{logs}"
                    ) from exc
            # A refused connection answers at once: polling often costs nothing and starts sooner.
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.02)

    async def _files_missing(self, workspace_id: str) -> bool:
        """A known workspace (it has a row) whose files are not on this host, with snapshots on."""
        if self.snapshots is None or not await self.rows.exists(workspace_id):
            return False
        files = self.snapshots.files(workspace_id)
        return not await asyncio.to_thread(files.present)

    async def _restore_missing(self, workspace_id: str, emit: EventSink) -> None:
        assert self.snapshots is not None
        try:
            info = await self.snapshots.restore(workspace_id)
        except SnapshotNotFound:
            log.info("workspace.no_snapshot", workspace_id=workspace_id)
            return
        except WorkspaceError as exc:
            # Drop the empty files just made, so the next task tries the restore again instead
            # of starting from a fresh clone.
            await self.backend.remove(workspace_id, purge=True)
            raise WorkspaceError(
                f"workspace {workspace_id}: its files are not on this host and restoring its "
                f"latest snapshot failed: {exc}"
            ) from exc
        log.info("workspace.restored", workspace_id=workspace_id, snapshot=info.name)
        await emit("workspace.restored", {"snapshot": info.name, "members": info.members})

    async def _forget(self, workspace_id: str) -> None:
        cached = self._clients.pop(workspace_id, None)
        if cached is not None:
            await cached[1].aclose()

    # Lifecycle: adoption at start-up, idle stop and retention, listing and removal -----------------

    async def adopt(self) -> list[str]:
        """Take over the workers this orchestrator's instance owns; remove those it cannot use.

        Removing keeps the files (the volume or directory): the next task recreates the worker.
        """
        adopted = []
        for worker in await self.backend.list_owned():
            if worker.unusable is not None:
                log.warning(
                    "workspace.orphan_removed",
                    workspace_id=worker.workspace_id,
                    reason=worker.unusable,
                )
                await self.backend.remove(worker.workspace_id, purge=False)
                continue
            adopted.append(worker.workspace_id)
            await self.rows.adopt(worker.workspace_id, "idle" if worker.running else "stopped",
                                  self.backend.name)  # fmt: skip
        if adopted:
            log.info("workspace.adopted", workspaces=adopted)
        return adopted

    async def sweep(self) -> dict[str, list[str]]:
        """Stop workers idle past the idle timeout; remove workspaces unused past the retention time."""
        now = utcnow()
        stopped, removed = [], []
        for row, last_used, busy in await self._usage():
            unused_for = (now - last_used).total_seconds()
            if (
                busy
                or unused_for < self.settings.workspace_idle_timeout_s
                or await self.tasks.has_active_task(row.id)  # one may have started since `_usage`
            ):
                continue
            lock = self._locks.setdefault(row.id, asyncio.Lock())
            if lock.locked():
                continue
            async with lock:
                await self._forget(row.id)
                if unused_for >= self.settings.workspace_retention_s:
                    await self.backend.remove(row.id, purge=True)
                    await self.rows.delete(row.id)
                    removed.append(row.id)
                elif row.status not in ("stopped", "removed"):
                    await self.backend.stop(row.id)
                    await self.rows.set_status(row.id, "stopped")
                    stopped.append(row.id)
        if stopped or removed:
            log.info("workspace.swept", stopped=stopped, removed=removed)
        return {"stopped": stopped, "removed": removed}

    async def run_janitor(self) -> None:
        while True:
            await asyncio.sleep(self.settings.workspace_sweep_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("workspace.sweep_failed")

    async def _usage(self) -> list[tuple[Row[Any], datetime, bool]]:
        """Each workspace row with when it was last used and whether a task runs in it, most
        recently used first. Read from the tasks, which every replica keeps current (a flag on the
        row would stay set when an orchestrator died mid-task)."""

        rows = await self.rows.all()
        busy, last_finished = await self.tasks.workspace_activity()
        usage = [(row, max(row.last_used_at, last_finished.get(row.id) or row.last_used_at),
                  row.id in busy) for row in rows]  # fmt: skip
        return sorted(usage, key=lambda entry: entry[1], reverse=True)

    async def describe(self) -> list[WorkspaceInfo]:
        live = {w.workspace_id: w for w in await self.backend.list_owned()}
        return [
            WorkspaceInfo(
                id=row.id,
                repo_url=row.repo_url,
                backend=row.backend,
                status="busy" if busy else row.status,
                running=bool(live.get(row.id) and live[row.id].running),
                handle=live[row.id].handle if row.id in live else None,
                created_at=row.created_at,
                last_used_at=last_used,
            )
            for row, last_used, busy in await self._usage()
        ]

    async def workers(self) -> list[tuple[OwnedWorker, str | None]]:
        """The backend's workers of this instance, each with its workspace's repository (None for a
        worker without a row, such as one the next sweep removes)."""
        repos = {row.id: row.repo_url for row in await self.rows.all()}
        return [(w, repos.get(w.workspace_id)) for w in await self.backend.list_owned()]

    async def stop(self, workspace_id: str) -> None:
        """Stop a workspace's worker now (its files kept); the next task starts it again."""
        if await self.tasks.has_active_task(workspace_id):
            raise WorkspaceBusy(f"workspace {workspace_id} is running a task; cancel it first")
        async with self._locks.setdefault(workspace_id, asyncio.Lock()):
            await self._forget(workspace_id)
            await self.backend.stop(workspace_id)
            if await self.rows.exists(workspace_id):
                await self.rows.set_status(workspace_id, "stopped")

    async def remove(self, workspace_id: str, *, purge: bool) -> bool:
        """Stop and remove a workspace's worker (and its files with `purge`). False if unknown."""
        if not await self.rows.exists(workspace_id):
            return False
        if await self.tasks.has_active_task(workspace_id):
            raise WorkspaceBusy(f"workspace {workspace_id} is running a task; cancel it first")
        async with self._locks.setdefault(workspace_id, asyncio.Lock()):
            await self._forget(workspace_id)
            await self.backend.remove(workspace_id, purge=purge)
            if purge:
                await self.rows.delete(workspace_id)
            else:
                await self.rows.set_status(workspace_id, "removed")
        return True

    # Snapshots --------------------------------------------------------------------------------

    async def snapshot(self, workspace_id: str) -> SnapshotInfo:
        """Upload a snapshot of the workspace's files (not while a task runs in it)."""
        store = await self._snapshot_store(workspace_id)
        async with self._locks.setdefault(workspace_id, asyncio.Lock()):
            return await store.snapshot(workspace_id)

    async def restore(self, workspace_id: str, snapshot: str | None = None) -> SnapshotInfo:
        """Replace the workspace's files with a snapshot's (default: the latest)."""
        store = await self._snapshot_store(workspace_id)
        async with self._locks.setdefault(workspace_id, asyncio.Lock()):
            return await store.restore(workspace_id, snapshot)

    async def _snapshot_store(self, workspace_id: str) -> SnapshotStore:
        if not await self.rows.exists(workspace_id):
            raise WorkspaceNotFound(f"no workspace with id {workspace_id!r}")
        if self.snapshots is None:
            raise SnapshotsUnavailable(self.snapshots_off)
        if await self.tasks.has_active_task(workspace_id):
            raise WorkspaceBusy(f"workspace {workspace_id} is running a task; wait for its end")
        return self.snapshots

    async def close(self) -> None:
        if self.snapshots is not None:
            await self.snapshots.close()
        for workspace_id in list(self._clients):
            await self._forget(workspace_id)
        await self.backend.close()
