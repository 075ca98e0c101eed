"""The worker's ASGI app: one per workspace, every route but `/health` behind that workspace's token.

Plain Starlette with pydantic models (no FastAPI): the worker starts in every container, and
FastAPI's import and app set-up cost more than the whole rest of the worker (see bench/worker_bench.py).
The routes live in `anvyl.worker.routes` (info, exec, files, git).
"""

from __future__ import annotations

import contextlib
import hmac
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from anvyl.worker import TOKEN_ENV
from anvyl.worker.processes import ExecRegistry, make_inherited_fds_private
from anvyl.worker.routes import exec, files, git, info
from anvyl.worker.routes.common import Handler, WorkerState, error_response, handle_errors


@dataclass(frozen=True)
class WorkerConfig:
    workspace: Path
    token: str

    @classmethod
    def from_env(cls, workspace: Path) -> WorkerConfig:
        token = os.environ.get(TOKEN_ENV, "")
        if len(token) < 16:
            raise SystemExit(f"{TOKEN_ENV} must hold a token of at least 16 characters")
        return cls(workspace=workspace, token=token)


def create_app(config: WorkerConfig) -> Starlette:
    workspace = config.workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    workspace = workspace.resolve()
    started = time.monotonic()
    token = config.token.encode()
    registry = ExecRegistry()
    make_inherited_fds_private()
    state = WorkerState(workspace=workspace, registry=registry, started=started)

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            given = ""
        # Constant-time comparison: the token must not leak through response timing.
        return hmac.compare_digest(given.strip().encode(), token)

    def guarded(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                return error_response(401, "missing or wrong worker token")
            return await handle_errors(lambda: handler(request))

        return endpoint

    routes = [
        *info.routes(state, guarded),
        *exec.routes(state, guarded),
        *files.routes(state, guarded),
        *git.routes(state, guarded),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        registry.kill_all()  # shutting down: no command outlives the worker

    async def http_error(_: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return error_response(status, getattr(exc, "detail", "error"))

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: http_error, 405: http_error},
    )
    app.state.token = token
    app.state.started = started
    app.state.registry = registry
    app.state.workspace = workspace
    return app
