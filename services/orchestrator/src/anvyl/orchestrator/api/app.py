"""The FastAPI application: lifespan wiring, middleware, error shapes, and the routers."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anvyl.orchestrator.a2a import routes as a2a_routes
from anvyl.orchestrator.agents.service import AgentService
from anvyl.orchestrator.api import agents as agent_routes
from anvyl.orchestrator.api import containers as container_routes
from anvyl.orchestrator.api import hosts as host_routes
from anvyl.orchestrator.api import memory as memory_routes
from anvyl.orchestrator.api import tasks
from anvyl.orchestrator.api import user_settings as settings_routes
from anvyl.orchestrator.api import workspaces as workspace_routes
from anvyl.orchestrator.api.auth import ApiKeys, require_api_key
from anvyl.orchestrator.api.local_clients import local_peers
from anvyl.orchestrator.api.schemas import Problem
from anvyl.orchestrator.api.services import Services, services
from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.migrations import is_current
from anvyl.orchestrator.hosts.service import HostService
from anvyl.orchestrator.hosts.tools import HostTools
from anvyl.orchestrator.llm import ModelRouter, load_model_config
from anvyl.orchestrator.logging import configure_logging, get_logger
from anvyl.orchestrator.loop.mcp_client import McpToolbox, load_mcp_servers
from anvyl.orchestrator.memory.factory import build_memory
from anvyl.orchestrator.memory.indexer import ArchiveIndexer
from anvyl.orchestrator.metrics import Metrics
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.bus import EventBus
from anvyl.orchestrator.tasks.execution import TaskExecutor
from anvyl.orchestrator.tasks.queue import TaskQueue
from anvyl.orchestrator.tasks.states import QUEUED
from anvyl.orchestrator.tasks.store import TaskStore
from anvyl.orchestrator.tasks.wakeups import CrossProcessWakeups
from anvyl.orchestrator.user_settings.models import UserSettings
from anvyl.orchestrator.user_settings.service import UserSettingsService
from anvyl.orchestrator.workspaces.manager import WorkspaceManager, create_backend

log = get_logger(__name__)


def _describe(errors: list[dict[str, object]]) -> str:
    parts = []
    for error in errors:
        loc = error.get("loc", ())
        where = ".".join(
            str(p) for p in (loc if isinstance(loc, tuple | list) else ()) if p != "body"
        )
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "extra_forbidden":
            message = "unknown field; remove it"
        parts.append(f"{where or 'body'}: {message}")
    return "; ".join(parts)


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods of every route whose path matches the request's."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(scope["path"]):
            methods |= route.methods or set()
    return sorted(methods)


class RequestContext:
    """Binds a request id to every log line of a request, returns it, and times the request.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs a task group per request.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = (
            headers.get(b"x-request-id", b"").decode(errors="replace")[:100] or uuid.uuid4().hex
        )
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.http_latency.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - started
            )


def build_router(settings: Settings) -> ModelRouter | None:
    """The model router from the config file and the environment; None when no model is set up."""
    config = load_model_config(settings.config_file, os.environ)
    if not config.chain():
        log.info("models.none", detail="no model configured: the built-in planner answers")
        return None
    return ModelRouter.from_config(config)


def create_app(settings: Settings) -> FastAPI:
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.effective_database_url)
        await db.upgrade()
        bus = EventBus()
        store = TaskStore(db, on_events=bus.notify)
        backend = create_backend(settings)
        workspaces = WorkspaceManager(settings, db, backend, tasks=store)
        agents = AgentService(settings, db, workspaces)
        hosts = HostService(settings, db)
        router, mcp = (
            build_router(settings),
            McpToolbox(await asyncio.to_thread(load_mcp_servers, settings.config_file, os.environ)),
        )
        await mcp.start()
        memory = build_memory(settings, db)
        indexer = ArchiveIndexer(db, memory, settings.data_dir) if memory is not None else None
        app.state.memory, app.state.indexer = memory, indexer
        executor = TaskExecutor(settings, store, workspaces, bus, metrics, router, mcp, agents,
                                memory, tool_sources=[HostTools(hosts)])  # fmt: skip
        queue = TaskQueue(settings, store, executor, metrics)
        wakeups = (
            CrossProcessWakeups(settings.effective_database_url, on_task_queued=queue.wake,
                                on_task_event=bus.notify_local)
            if db.dialect == "postgresql" else None
        )  # fmt: skip
        try:
            if wakeups is not None:
                await wakeups.start()
                bus.relay, queue.relay = wakeups.task_event, wakeups.task_queued
            await workspaces.adopt()
            await hosts.start()
            await queue.start()
        except BaseException:
            if wakeups is not None:
                await wakeups.close()
            await mcp.close()
            await workspaces.close()
            await db.close()
            await agents.close()
            await hosts.close()
            raise
        janitor = asyncio.create_task(workspaces.run_janitor(), name="workspace-janitor")

        def index_archives(current: UserSettings) -> None:
            # The archives of the configuration (ANVYL_MEMORY_ARCHIVES) and the user's settings.
            if indexer is not None:
                indexer.start([*settings.memory_archives, *current.rag_archives])

        user_settings = UserSettingsService(
            db, lambda: [e.name for e in router.endpoints] if router else [], agents.names,
            on_change=index_archives,
        )  # fmt: skip

        async def reindex_archives() -> None:
            # Archives change on disk: every interval, a sync reads only new or changed files.
            while True:
                await asyncio.sleep(settings.memory_reindex_interval_s)
                try:
                    current = await user_settings.current()
                    if indexer is not None and (settings.memory_archives or current.rag_archives):
                        await indexer.sync([*settings.memory_archives, *current.rag_archives])
                except Exception as exc:  # the database away for a while: try again next round
                    log.warning("memory.reindex_failed", error=repr(exc))

        reindexing: asyncio.Task[None] | None = None
        if indexer is not None:
            current = await user_settings.current()
            if settings.memory_archives or current.rag_archives:
                index_archives(current)
            reindexing = asyncio.create_task(reindex_archives(), name="archive-reindex")
        host_checks = asyncio.create_task(hosts.run_checks(), name="host-checks")
        app.state.services = Services(
            settings,
            db,
            store,
            bus,
            metrics,
            workspaces,
            executor,
            queue,
            agents,
            user_settings,
            hosts,
        )
        hosts.local_runner = host_routes.local_runner(app.state.services)
        if not app.state.api_keys.enabled:
            log.warning(
                "auth.off",
                detail="ANVYL_API_KEYS is empty: the API answers this machine only",
            )
        log.info("orchestrator.started", database=db.dialect, workspace_backend=backend.name,
                 models=[e.name for e in router.endpoints] if router else [],
                 mcp_tools=len(mcp.tools()), mcp_errors=mcp.errors,
                 task_slots=settings.max_concurrent_tasks, queue_owner=queue.owner)  # fmt: skip
        # The start-up objects (modules, compiled statements, schemas) live as long as the process:
        # out of the collector's sight, a full collection no longer walks them (it paused requests
        # for up to 190 ms under load).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            janitor.cancel()
            host_checks.cancel()
            if reindexing is not None:
                reindexing.cancel()
            if indexer is not None:
                await indexer.close()
            await queue.stop()
            if wakeups is not None:
                await wakeups.close()
            await mcp.close()
            if router is not None:
                await router.aclose()
            await agents.close()
            await hosts.close()
            await workspaces.close()
            if memory is not None:
                await memory.close()
            await db.close()

    # FastAPI's own OpenTelemetry hooks look up the global providers on every request (a tenth of
    # an enqueue's CPU); Anvyl reports through Prometheus (/metrics) and structlog instead.
    app = FastAPI(title="Anvyl orchestrator", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False,
                             "operation_spans": False})  # fmt: skip
    app.state.api_keys = ApiKeys(settings, local_peers(settings))

    app.add_middleware(RequestContext, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse(
            Problem(detail=_describe(errors), errors=errors).model_dump(), status_code=422
        )

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(asyncpg.PostgresError)
    @app.exception_handler(ConnectionError)
    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The database (or the connection to it) failed, not the request: 503, so clients retry.
        log.warning("database.unavailable", error=repr(exc), path=request.url.path)
        detail = f"the orchestrator's database did not answer, retry later ({type(exc).__name__})"
        return JSONResponse(Problem(detail=detail).model_dump(), status_code=503,
                            headers={"Retry-After": "1"})  # fmt: skip

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: open without a key."""
        return {"status": "ok"}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route matching the path only.
            allowed = _allowed_methods(app, request.scope)
            return JSONResponse(Problem(detail=f"method {request.method} is not allowed here; "
                                        f"use {', '.join(allowed)}").model_dump(),
                                status_code=405, headers={"Allow": ", ".join(allowed)})  # fmt: skip
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode; every other bad body is a 422.
            detail = f"body: cannot be read as JSON ({exc.detail}); send UTF-8 JSON"
            return JSONResponse(Problem(detail=detail).model_dump(), status_code=422)
        return await http_exception_handler(request, exc)

    @app.get("/ready", dependencies=[Depends(require_api_key)],
             responses={503: {"model": Problem, "description": "not ready, and why"}})  # fmt: skip
    async def ready(request: Request) -> JSONResponse:
        """Readiness: the database answers and its schema is at the newest migration."""
        svc = await services(request)
        try:
            async with svc.db.engine.connect() as connection:
                current = await connection.run_sync(is_current)
        except Exception as exc:
            return JSONResponse(
                {"status": "unavailable", "detail": f"database: {exc!r}"}, status_code=503
            )
        if not current:
            return JSONResponse({"status": "unavailable", "detail": "database schema is not at the newest "
                                 "migration: run `anvyl db upgrade`"}, status_code=503)  # fmt: skip
        return JSONResponse({"status": "ready", "database": svc.db.dialect})

    @app.get("/metrics", dependencies=[Depends(require_api_key)], response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format"}})  # fmt: skip
    async def prometheus(request: Request) -> PlainTextResponse:
        svc: Services = await services(request)
        counts = await svc.store.counts_by_status()
        body = metrics.render(counts, queue_depth=counts[QUEUED])
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    # Every error body is a Problem, the 422s of request validation included.
    errors: dict[int | str, dict[str, Any]] = {422: {"model": Problem}}
    app.include_router(tasks.router, responses=errors)
    app.include_router(workspace_routes.router, responses=errors)
    app.include_router(agent_routes.router, responses=errors)
    app.include_router(settings_routes.router, responses=errors)
    app.include_router(a2a_routes.router)
    app.include_router(host_routes.router, responses=errors)
    app.include_router(container_routes.router, responses=errors)
    app.include_router(memory_routes.router, responses=errors)
    return app


def app_from_environment() -> FastAPI:
    """The app of one `anvyl serve --workers N` process: settings from the environment."""
    return create_app(Settings())
