"""Workspace routes: list, show, remove (and purge their files)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from anvyl.orchestrator.api.auth import require_api_key
from anvyl.orchestrator.api.schemas import Problem
from anvyl.orchestrator.api.services import Services, services
from anvyl.orchestrator.workspaces.manager import WorkspaceBusy, WorkspaceInfo

router = APIRouter(prefix="/workspaces", dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Problem}})  # fmt: skip
SvcDep = Annotated[Services, Depends(services)]


class WorkspaceOut(BaseModel):
    workspace_id: str
    repo_url: str
    backend: str
    status: str
    running: bool
    handle: str | None
    created_at: datetime
    last_used_at: datetime

    @classmethod
    def of(cls, info: WorkspaceInfo) -> WorkspaceOut:
        return cls(workspace_id=info.id, repo_url=info.repo_url, backend=info.backend, status=info.status,
                   running=info.running, handle=info.handle, created_at=info.created_at,
                   last_used_at=info.last_used_at)  # fmt: skip


@router.get("", response_model=list[WorkspaceOut])
async def list_workspaces(svc: SvcDep) -> list[WorkspaceOut]:
    return [WorkspaceOut.of(info) for info in await svc.workspaces.describe()]


@router.get("/{workspace_id}", response_model=WorkspaceOut, responses={404: {"model": Problem}})
async def get_workspace(workspace_id: str, svc: SvcDep) -> WorkspaceOut:
    for info in await svc.workspaces.describe():
        if info.id == workspace_id:
            return WorkspaceOut.of(info)
    raise HTTPException(404, f"no workspace with id {workspace_id!r}")


@router.delete("/{workspace_id}", status_code=204,
               responses={404: {"model": Problem}, 409: {"model": Problem}})  # fmt: skip
async def delete_workspace(
    workspace_id: str,
    svc: SvcDep,
    purge: Annotated[bool, Query(description="also delete the workspace's files")] = False,
) -> None:
    try:
        found = await svc.workspaces.remove(workspace_id, purge=purge)
    except WorkspaceBusy as exc:
        raise HTTPException(409, str(exc)) from exc
    if not found:
        raise HTTPException(404, f"no workspace with id {workspace_id!r}")
