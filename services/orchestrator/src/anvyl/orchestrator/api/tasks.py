"""Task routes: orchestrate (sync, background, streamed), list, show, events, cancel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from anvyl.orchestrator.agents.service import AgentProblem
from anvyl.orchestrator.api.auth import require_api_key
from anvyl.orchestrator.api.schemas import (
    MAX_OFFSET,
    MAX_SEQ,
    Accepted,
    Decision,
    EventOut,
    FileUpload,
    OrchestrateRequest,
    Problem,
    TaskOut,
    TaskPage,
    TaskStatus,
)
from anvyl.orchestrator.api.services import Services, services
from anvyl.orchestrator.db.tables import Task
from anvyl.orchestrator.tasks.bus import TOKEN_EVENT, Token
from anvyl.orchestrator.tasks.events import follow
from anvyl.orchestrator.tasks.inputs import check_local_path
from anvyl.orchestrator.tasks.states import FINAL_STATES
from anvyl.orchestrator.tasks.store import IdempotencyConflict
from anvyl.orchestrator.workspaces.repos import InvalidRepository, RepoRef, parse_repo

router = APIRouter(dependencies=[Depends(require_api_key)], responses={401: {"model": Problem}})
SvcDep = Annotated[Services, Depends(services)]
TokensQuery = Annotated[
    bool,
    Query(description="SSE: also send the model's output as it streams (`token` events, no id)"),
]


async def _repo_for(svc: Services, body: OrchestrateRequest) -> tuple[RepoRef | None, str | None]:
    """The repository and workspace id of a request; a workspace_id alone names a known one."""
    if body.repo_url is not None:
        try:
            repo = parse_repo(body.repo_url)
        except InvalidRepository as exc:
            raise HTTPException(422, f"repo_url: {exc}") from exc
        if body.workspace_id is not None and body.workspace_id != repo.workspace_id:
            raise HTTPException(
                422, f"workspace_id: {body.workspace_id!r} is not the workspace of repo_url "
                f"({repo.workspace_id!r}); send one of them",
            )  # fmt: skip
        return repo, repo.workspace_id
    if body.workspace_id is not None:
        url = await svc.store.latest_repo_url(body.workspace_id)
        if url is None:
            raise HTTPException(
                422, f"workspace_id: no workspace {body.workspace_id!r}; send repo_url"
            )
        return parse_repo(url), body.workspace_id
    return None, None


async def _agent_placement(
    svc: Services, body: OrchestrateRequest, unknown_status: int
) -> tuple[RepoRef, str, float | None]:
    """A named agent's task runs in the agent's own workspace, on its model chain."""
    assert body.agent is not None
    for field in ("repo_url", "workspace_id", "model"):
        if getattr(body, field) is not None:
            raise HTTPException(422, f"{field}: agent {body.agent!r} works in its own workspace "
                                f"with its own models; leave {field} out")  # fmt: skip
    try:
        repo, timeout_s = await svc.agents.placement(body.agent, unknown_status=unknown_status)
    except AgentProblem as exc:
        raise HTTPException(exc.status, exc.detail) from None
    return repo, repo.workspace_id, timeout_s


def _check_model(svc: Services, body: OrchestrateRequest) -> None:
    """`model` names a configured endpoint, or the request is refused."""
    router = svc.executor.router
    known = [endpoint.name for endpoint in router.endpoints] if router is not None else []
    if body.model is not None and body.model not in known:
        listed = ", ".join(known) if known else "none (no model is configured)"
        raise HTTPException(422, f"model: no model endpoint named {body.model!r}; known: {listed}")


def _check_files(body: OrchestrateRequest, repo: RepoRef | None) -> None:
    """Paths in `files` need a repository; in one on this machine they must exist inside it."""
    for index, entry in enumerate(body.files):
        if isinstance(entry, FileUpload):
            continue
        if repo is None:
            raise HTTPException(
                422, f"files.{index}: {entry!r} is a path in a repository, but the request names "
                "no repository (repo_url); to send a file, give {\"name\": ..., \"content\": ...}",
            )  # fmt: skip
        if repo.local_path is not None:
            try:
                check_local_path(repo.local_path, entry)
            except ValueError as exc:
                raise HTTPException(422, f"files.{index}: {exc}") from exc


def _sse(events: AsyncIterator[Any]) -> EventSourceResponse:
    async def stream() -> AsyncIterator[dict[str, str]]:
        async for event in events:
            if isinstance(event, Token):
                # No id: a token is not stored, so a client's Last-Event-ID stays the last step's
                # seq and a reconnect replays from there.
                yield {"event": TOKEN_EVENT, "data": json.dumps(
                    {"type": TOKEN_EVENT, "after_seq": event.after_seq, "data": event.as_data()})}  # fmt: skip
                continue
            yield {"id": str(event.seq), "event": event.type,
                   "data": EventOut.from_row(event).model_dump_json()}  # fmt: skip

    return EventSourceResponse(stream(), ping=15)


async def _wait_final(svc: Services, task_id: str) -> TaskOut:
    async for _ in follow(svc.store, svc.bus, task_id):
        pass
    task = await svc.store.get(task_id)
    assert task is not None
    return TaskOut.from_row(task)


# One server-sent event (OpenAPI 3.1 describes each event of a text/event-stream with `schema`).
_EVENT_STREAM = {"text/event-stream": {"schema": {
    "type": "object", "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the event's seq"},
        "event": {"type": "string", "description": "the event's type"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/EventOut"}},
    },
}}}  # fmt: skip


@router.post(
    "/orchestrate",
    response_model=TaskOut,
    responses={
        200: {"content": _EVENT_STREAM, "description": "the finished task, or its event stream "
              "when the request accepts text/event-stream"},
        202: {"model": Accepted}, 409: {"model": Problem}, 422: {"model": Problem},
    },
)  # fmt: skip
async def orchestrate(
    body: OrchestrateRequest,
    request: Request,
    svc: SvcDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    tokens: TokensQuery = True,
) -> Any:
    return await submit(body, request, svc, idempotency_key, tokens)


async def submit(
    body: OrchestrateRequest, request: Request, svc: Services, idempotency_key: str | None,
    tokens: bool, unknown_agent_status: int = 422,
) -> Any:  # fmt: skip
    """Queue a task and answer as its mode asks (POST /orchestrate, POST /agents/NAME/act: there
    an unknown agent is the path's 404)."""
    if len(body.query) > svc.settings.max_query_chars:
        raise HTTPException(422, f"query: longer than {svc.settings.max_query_chars} characters")
    # The user's settings: a task naming no agent and no model gets the default agent or model.
    original = body
    defaults = await svc.user_settings.for_task(
        agent=body.agent, model=body.model, has_repo=bool(body.repo_url or body.workspace_id)
    )
    if defaults.agent is not None or defaults.model is not None:
        body = body.model_copy(update={"agent": defaults.agent} if defaults.agent
                               else {"model": defaults.model})  # fmt: skip
    timeout_s = body.timeout_s
    repo: RepoRef | None
    workspace_id: str | None
    if body.agent is not None:
        repo, workspace_id, agent_timeout_s = await _agent_placement(
            svc, body, unknown_agent_status
        )
        timeout_s = timeout_s or agent_timeout_s
    else:
        _check_model(svc, body)
        repo, workspace_id = await _repo_for(svc, body)
    if timeout_s is not None and timeout_s > svc.settings.max_task_timeout_s:
        raise HTTPException(422, f"timeout_s: at most {svc.settings.max_task_timeout_s:g} seconds")
    _check_files(body, repo)
    request_body = body.model_dump(mode="json") | {"settings": defaults.as_request()}
    if repo is not None:
        request_body["repo_url"] = repo.display_url
    try:
        created = await svc.store.create(
            query=body.query, repo_url=repo.url if repo else None, workspace_id=workspace_id, request=request_body,
            timeout_s=timeout_s, idempotency_key=idempotency_key,
            request_hash=original.fingerprint() if idempotency_key else None,
        )  # fmt: skip
    except IdempotencyConflict:
        raise HTTPException(
            409, "Idempotency-Key was already used with a different request body; use a new key"
        ) from None
    task = created.task
    if created.new:
        svc.queue.enqueued(workspace_id)
    if "text/event-stream" in request.headers.get("accept", ""):
        return _sse(follow(svc.store, svc.bus, task.id, tokens=tokens))
    if body.mode == "background":
        return JSONResponse(
            Accepted(
                task_id=task.id, status=task.status if not created.new else "queued"
            ).model_dump(),
            status_code=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/tasks/{task.id}"},
        )
    return await _wait_final(svc, task.id)


@router.get("/tasks", response_model=TaskPage)
async def list_tasks(
    svc: SvcDep,
    status_: Annotated[
        TaskStatus | None, Query(alias="status", description="filter by state")
    ] = None,
    workspace_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> TaskPage:
    rows = await svc.store.list_tasks(status=status_, workspace_id=workspace_id, limit=limit + 1,
                                      offset=offset)  # fmt: skip
    return TaskPage(
        tasks=[TaskOut.from_row(task) for task in rows[:limit]],
        next_offset=offset + limit if len(rows) > limit else None,
    )


async def _task_or_404(svc: Services, task_id: str) -> Task:
    task = await svc.store.get(task_id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task with id {task_id!r}")
    return task


@router.get("/tasks/{task_id}", response_model=TaskOut, responses={404: {"model": Problem}})
async def get_task(task_id: str, svc: SvcDep) -> TaskOut:
    return TaskOut.from_row(await _task_or_404(svc, task_id))


@router.get(
    "/tasks/{task_id}/events",
    response_model=list[EventOut],
    responses={
        200: {"content": _EVENT_STREAM, "description": "the task's events: a stream that ends "
              "with its result event, or with format=json the events stored so far"},
        404: {"model": Problem},
    },
)  # fmt: skip
async def task_events(
    task_id: str,
    svc: SvcDep,
    # "" rather than None when absent: a nullable header would be documented as the text "null".
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=r"^([0-9]{1,9})?$",
            description="resume after this seq (EventSource sends it on reconnects)",
        ),
    ] = "",
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="replay from after this seq")
    ] = None,
    format_: Annotated[Literal["json", "sse"] | None, Query(alias="format")] = None,
    tokens: TokensQuery = True,
) -> Response:
    await _task_or_404(svc, task_id)
    start = int(last_event_id) if last_event_id else after or 0
    if format_ == "json":
        events = await svc.store.events(task_id, start)
        return JSONResponse([json.loads(EventOut.from_row(e).model_dump_json()) for e in events])
    return _sse(follow(svc.store, svc.bus, task_id, start, tokens=tokens))


async def _decide(
    svc: Services, task_id: str, decision: Decision | None, approved: bool
) -> TaskOut:
    await _task_or_404(svc, task_id)
    decision = decision or Decision()
    try:
        await svc.store.record_decision(task_id, approved=approved, note=decision.note,
                                        call_id=decision.call_id)  # fmt: skip
    except LookupError as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, f"call_id: {exc}") from exc
    return TaskOut.from_row(await _task_or_404(svc, task_id))


@router.post("/tasks/{task_id}/approve", response_model=TaskOut,
             responses={404: {"model": Problem}, 409: {"model": Problem}})  # fmt: skip
async def approve_task(task_id: str, svc: SvcDep, decision: Decision | None = None) -> TaskOut:
    """Let the tool call the task is waiting for run."""
    return await _decide(svc, task_id, decision, approved=True)


@router.post("/tasks/{task_id}/reject", response_model=TaskOut,
             responses={404: {"model": Problem}, 409: {"model": Problem}})  # fmt: skip
async def reject_task(task_id: str, svc: SvcDep, decision: Decision | None = None) -> TaskOut:
    """Refuse the tool call the task is waiting for; the model is told, and goes on without it."""
    return await _decide(svc, task_id, decision, approved=False)


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut,
             responses={404: {"model": Problem}, 409: {"model": Problem}})  # fmt: skip
async def cancel_task(task_id: str, svc: SvcDep) -> TaskOut:
    task = await _task_or_404(svc, task_id)
    if task.status in FINAL_STATES:
        raise HTTPException(409, f"task {task_id} already ended ({task.status}); nothing to cancel")
    await svc.store.request_cancel(task_id)
    return TaskOut.from_row(await _task_or_404(svc, task_id))
