"""The interface every workspace backend implements (docker, local; cloudrun later)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from anvyl.orchestrator.workspaces.repos import RepoRef
from anvyl.worker.client import WorkerClient

WORKER_PORT = 8000


class WorkspaceError(RuntimeError):
    """A workspace could not be created, started or reached."""


@dataclass(frozen=True)
class WorkerEndpoint:
    workspace_id: str
    base_url: str
    token: str
    handle: str  # container id, or process id
    started: bool  # True when this call created or (re)started the worker


@dataclass(frozen=True)
class OwnedWorker:
    workspace_id: str
    handle: str
    running: bool
    unusable: str | None = None  # why it cannot be used as is (e.g. an old image), or None
    # What `GET /containers` shows; a backend fills what it knows.
    name: str | None = None  # container, service or process name
    state: str | None = None  # the backend's own word (docker: created, running, exited, ...)
    agent: str | None = None  # the named agent whose worker it is
    created: datetime | None = None


class WorkspaceBackend(Protocol):
    name: str

    async def ensure_running(self, repo: RepoRef) -> WorkerEndpoint:
        """Return the workspace's worker, creating or starting it when needed (not waiting for health)."""
        ...

    def clone_url(self, repo: RepoRef) -> str:
        """The URL the worker clones from (a local repository may be mounted elsewhere)."""
        ...

    def worker_client(self, endpoint: WorkerEndpoint) -> WorkerClient:
        """A client for the worker (a backend may add its own authentication)."""
        ...

    async def logs(self, workspace_id: str, lines: int = 50) -> str: ...

    async def stop(self, workspace_id: str) -> None: ...

    async def remove(self, workspace_id: str, *, purge: bool) -> None: ...

    async def list_owned(self) -> list[OwnedWorker]: ...

    async def close(self) -> None: ...
