"""Memory routes: search what earlier tasks and the user's archives hold, forget, index archives."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from anvyl.orchestrator.api.auth import require_api_key
from anvyl.orchestrator.api.schemas import Problem
from anvyl.orchestrator.memory.base import Memory
from anvyl.orchestrator.memory.indexer import ArchiveIndexer, ArchiveProgress
from anvyl.orchestrator.memory.records import Hit, Scope

router = APIRouter(prefix="/memory", tags=["memory"], dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Problem}, 409: {"model": Problem}})  # fmt: skip


class HitOut(Hit):
    source_label: str = Field(description="where it came from: archive:path:lines, or the task")

    @classmethod
    def of(cls, hit: Hit) -> HitOut:
        return cls(**hit.model_dump(), source_label=hit.source)


class SearchOut(BaseModel):
    query: str
    backend: str
    hits: list[HitOut]


class ForgetOut(BaseModel):
    removed: int


class SyncIn(BaseModel):
    locations: list[Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00]*$")]] = Field(
        max_length=100, description="the archives to keep indexed (those not listed are forgotten): "
        "directories, .zip, .tar.gz, git repositories (paths on the orchestrator's host, or URLs)",
    )  # fmt: skip


def memory(request: Request) -> Memory:
    found: Memory | None = getattr(request.app.state, "memory", None)
    if found is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "memory is off: set ANVYL_MEMORY_BACKEND "
                            "to database or cognee")  # fmt: skip
    return found


def indexer(request: Request) -> ArchiveIndexer:
    memory(request)
    found: ArchiveIndexer = request.app.state.indexer
    return found


# Not only blanks, spelled out: `\S` means one thing to the OpenAPI document's readers (ECMA-262
# regexes) and another to the server's (Unicode whitespace, U+0085 included), so they would disagree.
NOT_BLANK = r"[^ \t\n\r\f\v]"
_Name = Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


@router.get("/search")
async def search(
    mem: Annotated[Memory, Depends(memory)],
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=2000,
            pattern=NOT_BLANK,
            description="what to look for, in words",
        ),
    ],
    scope: Scope = "all",
    workspace: _Name = None,
    agent: _Name = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SearchOut:
    """The memories and archive snippets most relevant to `q`, best first, each with its source."""
    hits = await mem.search(q, scope=scope, workspace_id=workspace, agent=agent, limit=limit)
    return SearchOut(query=q, backend=mem.name, hits=[HitOut.of(h) for h in hits])


_Key = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


@router.delete("/workspaces/{workspace_id}")
async def forget_workspace(
    workspace_id: _Key, mem: Annotated[Memory, Depends(memory)]
) -> ForgetOut:
    """Forget what the workspace's tasks left (their summaries)."""
    return ForgetOut(removed=await mem.forget(workspace_id=workspace_id))


@router.delete("/agents/{name}")
async def forget_agent(name: _Key, mem: Annotated[Memory, Depends(memory)]) -> ForgetOut:
    """Forget what the agent's tasks left (their summaries)."""
    return ForgetOut(removed=await mem.forget(agent=name))


@router.delete("/archives")
async def forget_archive(
    location: Annotated[
        str,
        Query(
            min_length=1,
            max_length=4096,
            pattern=r"^[^\x00]*$",
            description="the archive as it was indexed",
        ),
    ],
    idx: Annotated[ArchiveIndexer, Depends(indexer)],
) -> ForgetOut:
    """Forget an archive: its snippets, and its indexing state (until it is indexed again)."""
    return ForgetOut(removed=await idx.forget(location))


@router.get("/archives")
async def archives(idx: Annotated[ArchiveIndexer, Depends(indexer)]) -> list[ArchiveProgress]:
    """Each archive's indexing: its state, counts, and the files skipped, with why."""
    return await idx.stored_progress()


@router.post("/archives", status_code=202)
async def sync_archives(
    body: SyncIn, idx: Annotated[ArchiveIndexer, Depends(indexer)]
) -> list[ArchiveProgress]:
    """Index these archives in the background (changed files only); follow with GET /memory/archives."""
    idx.start(body.locations)
    return [ArchiveProgress(location=location) for location in dict.fromkeys(body.locations)]
