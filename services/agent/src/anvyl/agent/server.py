"""The worker's HTTP API. One app per workspace, guarded by that workspace's bearer token."""

from __future__ import annotations

import hmac
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from anvyl.agent import API_VERSION
from anvyl.agent.git import GitArgumentError, GitCommandFailed, clone_or_fetch, git_env
from anvyl.agent.models import ExecRequest, ExecResult, GitCloneRequest, GitCloneResult, Health
from anvyl.agent.paths import PathOutsideWorkspace, resolve_inside
from anvyl.agent.processes import run_command

TOKEN_ENV = "ANVYL_WORKER_TOKEN"
# Only these variables of the worker's own environment reach commands; the token never does.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "USER")


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


def command_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("HOME", "/tmp")
    env = git_env(env)
    env.update(extra)
    env.pop(TOKEN_ENV, None)
    return env


_bearer = HTTPBearer(auto_error=False)


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    given = credentials.credentials.encode() if credentials else b""
    if not hmac.compare_digest(given, request.app.state.token):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong worker token")


def create_app(config: WorkerConfig) -> FastAPI:
    app = FastAPI(title="anvyl worker", version=API_VERSION, docs_url=None, redoc_url=None)
    workspace = config.workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    app.state.token = config.token.encode()
    guarded = [Depends(require_token)]

    @app.exception_handler(PathOutsideWorkspace)
    async def _outside(_: Request, exc: PathOutsideWorkspace) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_403_FORBIDDEN)

    @app.exception_handler(GitArgumentError)
    async def _git_argument(_: Request, exc: GitArgumentError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)

    @app.exception_handler(GitCommandFailed)
    async def _git_failed(_: Request, exc: GitCommandFailed) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        # Open on purpose: the manager polls it before it has anything to say to the worker.
        return Health(version=API_VERSION, workspace=str(workspace))

    @app.post("/exec", response_model=ExecResult, dependencies=guarded)
    async def execute(request: ExecRequest) -> ExecResult:
        cwd = resolve_inside(workspace, request.cwd)
        if not cwd.is_dir():
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"cwd {request.cwd!r} is not a directory"
            )
        argv = (
            request.argv if request.argv is not None else ["/bin/sh", "-c", request.command or ""]
        )
        try:
            return await run_command(
                argv,
                cwd=cwd,
                env=command_env(request.env),
                timeout_s=request.timeout_s,
                stdin=request.stdin,
                max_output_bytes=request.max_output_bytes,
            )
        except (FileNotFoundError, PermissionError) as exc:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"cannot run {argv[0]!r}: {exc}"
            ) from exc

    @app.post("/git/clone", response_model=GitCloneResult, dependencies=guarded)
    async def git_clone(request: GitCloneRequest) -> GitCloneResult:
        return await clone_or_fetch(request, resolve_inside(workspace, request.dest))

    app.state.started = started
    return app
