"""Workspace routes: list, show, remove (and purge their files), snapshot and restore."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from anvyl.orchestrator.api.auth import require_api_key
from anvyl.orchestrator.api.schemas import Problem
from anvyl.orchestrator.api.services import Services, services
from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.orchestrator.workspaces.manager import WorkspaceBusy, WorkspaceInfo, WorkspaceNotFound
from anvyl.orchestrator.workspaces.snapshot_archive import SnapshotNotFound
from anvyl.orchestrator.workspaces.snapshots import SnapshotInfo

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


class SnapshotOut(BaseModel):
    workspace_id: str
    snapshot: str  # its name: the UTC time it was taken
    location: str  # gs://bucket/snapshots/{workspace_id}/{snapshot}.tar.gz
    size: int  # bytes of the tar.gz
    created_at: datetime
    members: int | None  # entries of the archive

    @classmethod
    def of(cls, info: SnapshotInfo) -> SnapshotOut:
        return cls(workspace_id=info.workspace_id, snapshot=info.name, location=info.url, size=info.size,
                   created_at=info.created, members=info.members)  # fmt: skip


def _snapshot_problem(exc: WorkspaceError) -> HTTPException:
    """404: no such workspace or snapshot; 409: no bucket, a busy workspace, or one whose files
    cannot be read or written now (the message says which)."""
    return HTTPException(404 if isinstance(exc, WorkspaceNotFound | SnapshotNotFound) else 409,
                         str(exc))  # fmt: skip


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


@router.post("/{workspace_id}/snapshot", status_code=201, response_model=SnapshotOut,
             responses={404: {"model": Problem}, 409: {"model": Problem}})  # fmt: skip
async def snapshot_workspace(workspace_id: str, svc: SvcDep) -> SnapshotOut:
    """Upload a snapshot of the workspace's files to the bucket (ANVYL_GCS_BUCKET)."""
    try:
        return SnapshotOut.of(await svc.workspaces.snapshot(workspace_id))
    except WorkspaceError as exc:
        raise _snapshot_problem(exc) from exc


@router.post("/{workspace_id}/restore", response_model=SnapshotOut,
             responses={404: {"model": Problem}, 409: {"model": Problem}})  # fmt: skip
async def restore_workspace(
    workspace_id: str,
    svc: SvcDep,
    snapshot: Annotated[
        str | None, Query(description="the snapshot's name; default: the latest")
    ] = None,
) -> SnapshotOut:
    """Replace the workspace's files with those of a snapshot."""
    try:
        return SnapshotOut.of(await svc.workspaces.restore(workspace_id, snapshot))
    except WorkspaceError as exc:
        raise _snapshot_problem(exc) from exc
