"""Host routes (seed 001): this host's info, a local query, known hosts, remote query, broadcast."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from anvyl.orchestrator.api.auth import require_api_key
from anvyl.orchestrator.api.schemas import OrchestrateRequest, Problem, TaskOut
from anvyl.orchestrator.api.services import Services, services
from anvyl.orchestrator.api.tasks import submit, wait_final
from anvyl.orchestrator.hosts.forwarding import (
    REQUEST_KEY,
    BadForwardingHeader,
    Forwarded,
)
from anvyl.orchestrator.hosts.models import (
    AgentInfo,
    BroadcastRequest,
    HostAnswer,
    HostCreate,
    HostOut,
    Load,
    ProcessRequest,
    RemoteQueryRequest,
)
from anvyl.orchestrator.hosts.service import HostProblem, HostService, LocalRunner
from anvyl.orchestrator.tasks.states import QUEUED, RUNNING, WAITING_APPROVAL

router = APIRouter(prefix="/agent", tags=["hosts"], dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Problem}})  # fmt: skip
SvcDep = Annotated[Services, Depends(services)]
T = TypeVar("T")
_REMOTE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no known host with that id"},
    409: {"model": Problem, "description": "the host cannot be asked (its kind, its token)"},
    502: {
        "model": Problem,
        "description": "the host is not reachable, refused our token, or failed",
    },
    504: {"model": Problem, "description": "the host did not answer within the timeout"},
    508: {"model": Problem, "description": "the query went round in a loop or past the hop limit"},
}
_VERSION = importlib.metadata.version("anvyl-orchestrator")


async def forwarded(request: Request) -> Forwarded:
    """How a query reached this host: the X-Anvyl-Hops, X-Anvyl-Trace-Id and X-Anvyl-Via headers
    another Anvyl sends (a client's own query: hop 0, a new trace). Not in the OpenAPI document:
    hosts set them, clients do not."""
    try:
        return Forwarded.from_headers(request.headers)
    except BadForwardingHeader as exc:
        raise HTTPException(
            422, f"{exc}; these headers are set by Anvyl hosts, leave them out"
        ) from None


ForwardedDep = Annotated[Forwarded, Depends(forwarded)]


def _hosts(svc: Services) -> HostService:
    assert svc.hosts is not None
    return svc.hosts


async def _answer(call: Awaitable[T]) -> T:
    try:
        return await call
    except HostProblem as exc:
        raise HTTPException(exc.status, exc.detail, headers=exc.headers) from None


def local_runner(svc: Services) -> LocalRunner:
    """A query answered on this host as a task (a broadcast's own answer, the host tools')."""

    async def run(query: str, fwd: Forwarded, timeout_s: float) -> dict[str, Any]:
        body = OrchestrateRequest(query=query, timeout_s=timeout_s)
        created = await svc.store.create(
            query=body.query, repo_url=None, workspace_id=None,
            request=body.model_dump(mode="json") | {REQUEST_KEY: fwd.stored()},
            timeout_s=timeout_s, idempotency_key=None, request_hash=None,
        )  # fmt: skip
        svc.queue.enqueued(None)
        try:
            task = await asyncio.wait_for(wait_final(svc, created.task.id), timeout_s)
        except TimeoutError:
            await svc.store.request_cancel(created.task.id)  # it must not run on unseen
            raise
        return task.model_dump(mode="json")

    return run


@router.get("/info", response_model=AgentInfo)
async def info(svc: SvcDep) -> AgentInfo:
    """This host: its id, name, version, agents, models, hub servers and load."""
    hosts = _hosts(svc)
    counts = await svc.store.counts_by_status()
    router_ = svc.executor.router
    return AgentInfo(
        host_id=hosts.self_id, name=hosts.self_name, version=_VERSION,
        agents=await svc.agents.store.names(),
        models=[e.name for e in router_.endpoints] if router_ is not None else [],
        hub_servers=sorted(svc.executor.mcp.connections), tools=len(svc.executor.mcp.tools()),
        known_hosts=hosts.known,
        load=Load(cpu_count=os.cpu_count() or 1, load_avg=[round(x, 2) for x in os.getloadavg()],
                  task_slots=svc.settings.max_concurrent_tasks,
                  tasks_running=counts[RUNNING] + counts[WAITING_APPROVAL], tasks_queued=counts[QUEUED]),
    )  # fmt: skip


@router.post("/process", response_model=TaskOut,
             responses={409: _REMOTE_ERRORS[409]})  # fmt: skip
async def process(body: ProcessRequest, request: Request, svc: SvcDep, fwd: ForwardedDep) -> Any:
    """A query answered here, as POST /orchestrate answers it in sync mode (another host's
    forwarded query too: refused with 409 when it went round in a loop)."""
    await _answer(_guard(svc, fwd))
    try:
        orchestrate = OrchestrateRequest.model_validate(body.model_dump() | {"mode": "sync"})
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False), body=body) from None
    return await submit(orchestrate, request, svc, None, tokens=False,
                        request_extra={REQUEST_KEY: fwd.stored()})  # fmt: skip


async def _guard(svc: Services, fwd: Forwarded) -> None:
    _hosts(svc).guard(fwd)


@router.post("/remote-query", response_model=HostAnswer, responses=_REMOTE_ERRORS)
async def remote_query(body: RemoteQueryRequest, svc: SvcDep, fwd: ForwardedDep) -> HostAnswer:
    """Ask one known host (with its token, within `timeout_s`, 30 s by default)."""
    return await _answer(_hosts(svc).remote_query(body.host_id, body.query, fwd, body.timeout_s))


@router.post("/broadcast", response_model=list[HostAnswer], responses={409: _REMOTE_ERRORS[409]})
async def broadcast(body: BroadcastRequest, svc: SvcDep, fwd: ForwardedDep) -> list[HostAnswer]:
    """Ask every known host at once (and this one with include_self): one answer each, a host
    that cannot answer within the timeout as an error that names it."""
    return await _answer(_hosts(svc).broadcast(body.query, fwd, body.timeout_s,
                                               include_self=body.include_self, tags=body.tags))  # fmt: skip


@router.get("/hosts", response_model=list[HostOut])
async def list_hosts(svc: SvcDep) -> list[HostOut]:
    return await _hosts(svc).list_hosts()


@router.post("/hosts", response_model=HostOut, status_code=201,
             responses={409: {"model": Problem}})  # fmt: skip
async def add_host(body: HostCreate, svc: SvcDep) -> HostOut:
    """Remember a host; its token is stored encrypted. Checked at once, then periodically."""
    return await _answer(_hosts(svc).add(body))


@router.get("/hosts/{host_id}", response_model=HostOut, responses={404: {"model": Problem}})
async def get_host(host_id: str, svc: SvcDep) -> HostOut:
    return HostOut.from_row(await _answer(_hosts(svc).host(host_id)))


@router.delete("/hosts/{host_id}", status_code=204, responses={404: {"model": Problem}})
async def remove_host(host_id: str, svc: SvcDep) -> Response:
    await _answer(_hosts(svc).remove(host_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
