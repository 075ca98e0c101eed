"""`GET /containers`: the worker containers (or processes, or services) of this orchestrator, for
debugging: which workspace, repository and agent each serves, and its state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from anvyl.orchestrator.api.auth import require_api_key
from anvyl.orchestrator.api.schemas import Problem
from anvyl.orchestrator.api.services import Services, services

router = APIRouter(prefix="/containers", dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Problem}})  # fmt: skip
SvcDep = Annotated[Services, Depends(services)]


class ContainerOut(BaseModel):
    name: str  # `docker logs NAME` (docker backend); the process id or service name otherwise
    state: str  # docker: created, running, exited, ...; other backends: running or stopped
    running: bool
    workspace: str
    repository: str | None  # None: a worker whose workspace has no row (swept soon)
    agent: str | None  # the named agent whose worker it is
    created: datetime | None
    backend: str


@router.get("", response_model=list[ContainerOut])
async def list_containers(svc: SvcDep) -> list[ContainerOut]:
    backend = svc.workspaces.backend.name
    return [
        ContainerOut(
            name=worker.name or worker.handle,
            state=worker.state or ("running" if worker.running else "stopped"),
            running=worker.running,
            workspace=worker.workspace_id,
            repository=repository,
            agent=worker.agent,
            created=worker.created,
            backend=backend,
        )
        for worker, repository in sorted(
            await svc.workspaces.workers(), key=lambda pair: pair[0].workspace_id
        )
    ]
