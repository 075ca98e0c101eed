"""Agent routes: create, list, show, change, remove, start, stop, act, logs (see AGENTS in README)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from anvyl.orchestrator.agents.logs import agent_logs
from anvyl.orchestrator.agents.models import AgentCreate, AgentOut, AgentUpdate
from anvyl.orchestrator.agents.service import AgentProblem
from anvyl.orchestrator.api.auth import require_api_key
from anvyl.orchestrator.api.schemas import Accepted, ActRequest, Problem, TaskOut
from anvyl.orchestrator.api.services import Services, services
from anvyl.orchestrator.api.tasks import submit

router = APIRouter(prefix="/agents", tags=["agents"], dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Problem}, 404: {"model": Problem}})  # fmt: skip
SvcDep = Annotated[Services, Depends(services)]
T = TypeVar("T")


async def _answer(call: Awaitable[T]) -> T:
    try:
        return await call
    except AgentProblem as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.post("", response_model=AgentOut, status_code=201,
             responses={409: {"model": Problem}, 503: {"model": Problem}})  # fmt: skip
async def create_agent(body: AgentCreate, svc: SvcDep) -> AgentOut:
    return await _answer(svc.agents.create(body))


@router.get("", response_model=list[AgentOut])
async def list_agents(
    svc: SvcDep, running: Annotated[bool, Query(description="only running agents")] = False
) -> list[AgentOut]:
    return await svc.agents.list_agents(running=running)


@router.get("/{name}", response_model=AgentOut)
async def get_agent(
    name: str,
    svc: SvcDep,
    check: Annotated[bool, Query(description="probe the provider (provider_health)")] = False,
) -> AgentOut:
    return await _answer(svc.agents.get(name, check=check))


@router.patch("/{name}", response_model=AgentOut)
async def update_agent(name: str, body: AgentUpdate, svc: SvcDep) -> AgentOut:
    return await _answer(svc.agents.update(name, body))


@router.delete("/{name}", status_code=204, responses={409: {"model": Problem}})
async def remove_agent(
    name: str,
    svc: SvcDep,
    force: Annotated[bool, Query(description="also a running agent")] = False,
    purge: Annotated[bool, Query(description="also its files")] = False,
) -> Response:
    await _answer(svc.agents.remove(name, force=force, purge=purge))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/start", response_model=AgentOut, responses={503: {"model": Problem}})
async def start_agent(name: str, svc: SvcDep) -> AgentOut:
    return await _answer(svc.agents.start(name))


@router.post("/{name}/stop", response_model=AgentOut, responses={409: {"model": Problem}})
async def stop_agent(name: str, svc: SvcDep) -> AgentOut:
    return await _answer(svc.agents.stop(name))


@router.post("/{name}/act", response_model=TaskOut,
             responses={202: {"model": Accepted}, 409: {"model": Problem}})  # fmt: skip
async def act(
    name: str,
    body: ActRequest,
    request: Request,
    svc: SvcDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    tokens: bool = True,
) -> Any:
    """A task for the agent: the same answers as POST /orchestrate, `metadata.agent` its name."""
    try:
        orchestrate = body.as_orchestrate(name)
    except ValidationError as exc:  # a check of POST /orchestrate's body (repeated files, ...)
        raise RequestValidationError(exc.errors(include_url=False), body=body) from None
    return await submit(orchestrate, request, svc, idempotency_key, tokens,
                        unknown_agent_status=404)  # fmt: skip


@router.get("/{name}/logs", responses={200: {"content": {"text/event-stream": {}}}})
async def logs(
    name: str,
    svc: SvcDep,
    follow: bool = False,
    tail: Annotated[int, Query(ge=0, le=10_000)] = 100,
) -> EventSourceResponse:
    """`event: task` for each event of its tasks, `event: log` for each line of its worker's log."""
    agent = await _answer(svc.agents.get(name))
    stream = agent_logs(svc.store, svc.workspaces.backend, agent.workspace_id, follow=follow,
                        tail=tail)  # fmt: skip
    return EventSourceResponse(stream, ping=15)
