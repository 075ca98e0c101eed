"""The workspace manager: maps a repository to its worker, keeps it warm, restarts it when dead.

Tasks of one workspace run one at a time (a lock per workspace); different workspaces run in parallel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from anvyl.agent.client import WorkerClient, WorkerError
from anvyl.agent.models import GitCloneRequest, GitCloneResult
from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Workspace as WorkspaceRow
from anvyl.orchestrator.db.tables import utcnow
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.workspaces.base import WorkerEndpoint, WorkspaceBackend, WorkspaceError
from anvyl.orchestrator.workspaces.repos import RepoRef

log = get_logger(__name__)
EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class ActiveWorkspace:
    """A healthy worker with the repository checked out, held for one task."""

    id: str
    repo: RepoRef
    client: WorkerClient
    backend: str
    reused: bool
    sync: GitCloneResult


def create_backend(settings: Settings) -> WorkspaceBackend:
    from anvyl.orchestrator.workspaces.docker_backend import DockerBackend, docker_available
    from anvyl.orchestrator.workspaces.local_backend import LocalBackend

    choice = settings.workspace_backend
    if choice == "auto":
        choice = "docker" if docker_available(settings) else "local"
    if choice == "docker":
        return DockerBackend(settings)
    if choice == "cloudrun":
        from anvyl.orchestrator.workspaces.cloudrun_backend import CloudRunBackend

        return CloudRunBackend(settings)
    return LocalBackend(settings)


class WorkspaceManager:
    def __init__(self, settings: Settings, db: Database, backend: WorkspaceBackend) -> None:
        self.settings = settings
        self.db = db
        self.backend = backend
        self._locks: dict[str, asyncio.Lock] = {}
        self._clients: dict[str, tuple[WorkerEndpoint, WorkerClient]] = {}

    @asynccontextmanager
    async def acquire(self, repo: RepoRef, emit: EventSink) -> AsyncIterator[ActiveWorkspace]:
        lock = self._locks.setdefault(repo.workspace_id, asyncio.Lock())
        async with lock:
            client, reused = await self._healthy_worker(repo, emit)
            try:
                sync = await client.git_clone(GitCloneRequest(url=self.backend.clone_url(repo)))
            except WorkerError as exc:
                raise WorkspaceError(f"cannot check out {repo.display_url}: {exc}") from exc
            await emit("workspace.synced", {"action": sync.action, "head": sync.head})
            await self._record(repo, "busy")
            try:
                yield ActiveWorkspace(
                    repo.workspace_id, repo, client, self.backend.name, reused, sync
                )
            finally:
                await self._record(repo, "idle")

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
        endpoint = await self.backend.ensure_running(repo)
        client = WorkerClient(endpoint.base_url, endpoint.token)
        try:
            await self._wait_healthy(client, repo.workspace_id)
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

    async def _wait_healthy(self, client: WorkerClient, workspace_id: str) -> None:
        deadline = time.monotonic() + self.settings.worker_start_timeout_s
        delay = 0.01
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
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    async def _forget(self, workspace_id: str) -> None:
        cached = self._clients.pop(workspace_id, None)
        if cached is not None:
            await cached[1].aclose()

    async def _record(self, repo: RepoRef, status: str) -> None:
        async with self.db.session.begin() as session:
            row = await session.get(WorkspaceRow, repo.workspace_id)
            if row is None:
                session.add(
                    WorkspaceRow(
                        id=repo.workspace_id,
                        repo_url=repo.display_url,
                        backend=self.backend.name,
                        status=status,
                    )
                )
            else:
                row.status = status
                row.backend = self.backend.name
                row.last_used_at = utcnow()

    async def close(self) -> None:
        for workspace_id in list(self._clients):
            await self._forget(workspace_id)
        await self.backend.close()
