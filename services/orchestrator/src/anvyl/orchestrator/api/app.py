"""The FastAPI application: lifespan wiring, middleware, error shapes and routes."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from anvyl.orchestrator.api.schemas import OrchestrateRequest, Problem, TaskOut
from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.execution import TaskExecutor
from anvyl.orchestrator.logging import configure_logging, get_logger
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.store import TaskStore
from anvyl.orchestrator.workspaces.manager import WorkspaceManager, create_backend
from anvyl.orchestrator.workspaces.repos import InvalidRepository, parse_repo

log = get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    store: TaskStore
    workspaces: WorkspaceManager
    executor: TaskExecutor


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _describe(errors: list[dict[str, object]]) -> str:
    parts = []
    for error in errors:
        loc = error.get("loc", ())
        where = ".".join(
            str(p) for p in (loc if isinstance(loc, tuple | list) else ()) if p != "body"
        )
        where = where or "body"
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "extra_forbidden":
            message = "unknown field; remove it"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def create_app(settings: Settings) -> FastAPI:
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.effective_database_url)
        await db.upgrade()
        store = TaskStore(db)
        interrupted = await store.fail_interrupted("the orchestrator stopped while the task ran")
        backend = create_backend(settings)
        workspaces = WorkspaceManager(settings, db, backend)
        app.state.services = Services(
            settings, db, store, workspaces, TaskExecutor(settings, store, workspaces)
        )
        log.info(
            "orchestrator.started",
            database=db.dialect,
            workspace_backend=backend.name,
            interrupted_tasks=interrupted,
        )
        try:
            yield
        finally:
            await workspaces.close()
            await db.close()

    app = FastAPI(title="Anvyl orchestrator", version="0.1.0", lifespan=lifespan)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        response.headers["x-request-id"] = request_id
        log.debug("http.request", method=request.method, path=request.url.path,
                  status=response.status_code, duration_s=round(time.perf_counter() - started, 6))  # fmt: skip
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        body = Problem(detail=_describe(errors), errors=errors)
        return JSONResponse(body.model_dump(), status_code=422)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/orchestrate",
        response_model=TaskOut,
        responses={422: {"model": Problem}},
    )
    async def orchestrate(body: OrchestrateRequest, request: Request) -> TaskOut:
        svc = services(request)
        if len(body.query) > svc.settings.max_query_chars:
            raise HTTPException(
                422, f"query: longer than {svc.settings.max_query_chars} characters"
            )
        try:
            repo = parse_repo(body.repo_url)
        except InvalidRepository as exc:
            raise HTTPException(422, f"repo_url: {exc}") from exc
        task = await svc.store.create(
            query=body.query,
            repo_url=repo.url,
            workspace_id=repo.workspace_id,
            request=body.model_dump(mode="json") | {"repo_url": repo.display_url},
        )
        await svc.executor.run(task.id)
        done = await svc.store.get(task.id)
        assert done is not None
        return TaskOut.from_row(done)

    @app.get("/tasks/{task_id}", response_model=TaskOut, responses={404: {"model": Problem}})
    async def get_task(task_id: str, request: Request) -> TaskOut:
        task = await services(request).store.get(task_id)
        if task is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task with id {task_id!r}")
        return TaskOut.from_row(task)

    return app
