"""The worker's HTTP API. One app per workspace, guarded by that workspace's bearer token.

Plain Starlette with pydantic models (no FastAPI): the worker starts in every container, and
FastAPI's import and app set-up cost more than the whole rest of the worker (see bench/worker_bench.py).
Errors are JSON `{"detail": ...}` like FastAPI's; request validation errors are 422.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import hmac
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from anvyl.worker import API_VERSION, files
from anvyl.worker import git as gitops
from anvyl.worker.files import FileOperationError
from anvyl.worker.git import GitArgumentError, GitCommandFailed, NothingToCommit, base_env, git_env
from anvyl.worker.models import (
    DiskUsage,
    ExecKillResult,
    ExecRequest,
    ExecResult,
    ExecStreamEvent,
    FileDeleteRequest,
    FileListRequest,
    FileMoveRequest,
    FileReadRequest,
    FileWriteRequest,
    GitCheckoutRequest,
    GitCloneRequest,
    GitCommitRequest,
    GitDiffRequest,
    GitFetchRequest,
    GitLogRequest,
    GitPathRequest,
    Health,
    Info,
    MemoryUsage,
    SearchRequest,
)
from anvyl.worker.paths import InvalidPath, PathOutsideWorkspace, resolve_inside
from anvyl.worker.processes import (
    ExecIdInUse,
    ExecRegistry,
    make_inherited_fds_private,
    run_command,
)

TOKEN_ENV = "ANVYL_WORKER_TOKEN"
MAX_BODY_BYTES = 120 * 1024 * 1024
INFO_DU_TIMEOUT_S = 5.0

RequestT = TypeVar("RequestT", bound=BaseModel)


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
    env = git_env(base_env())
    env.update(extra)
    env.pop(TOKEN_ENV, None)
    return env


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _error(status: int, detail: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


_ERRNO_STATUS = {
    errno.ENOENT: 404,
    errno.EEXIST: 409,
    errno.ENOTEMPTY: 409,
    errno.EACCES: 403,
    errno.EPERM: 403,
    errno.EROFS: 403,
    errno.ENOSPC: 507,
    errno.EDQUOT: 507,
}


def _os_error_response(exc: OSError) -> JSONResponse:
    if isinstance(exc, TimeoutError):
        return _error(504, f"timed out: {exc}")
    status = _ERRNO_STATUS.get(exc.errno or 0, 400)
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    name = Path(exc.filename).name if isinstance(exc.filename, str) else None
    return _error(status, f"{reason}: {name!r}" if name else reason)


async def _handle_errors(call: Callable[[], Awaitable[Response]]) -> Response:
    """Map the worker's own exceptions to clear 4xx answers; anything else is a real 500."""
    try:
        return await call()
    except ApiError as exc:
        return _error(exc.status, exc.detail)
    except PathOutsideWorkspace as exc:
        return _error(403, str(exc))
    except InvalidPath as exc:
        return _error(400, str(exc))
    except FileOperationError as exc:
        return _error(exc.status, str(exc))
    except NothingToCommit as exc:
        return _error(409, str(exc))
    except GitCommandFailed as exc:
        return _error(422, str(exc))
    except GitArgumentError as exc:
        return _error(400, str(exc))
    except ExecIdInUse as exc:
        return _error(409, str(exc))
    except OSError as exc:
        return _os_error_response(exc)
    except (UnicodeError, re.error) as exc:
        return _error(400, str(exc))


async def _parse(request: Request, model: type[RequestT]) -> RequestT:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise ApiError(
            422, json.loads(exc.json(include_url=False, include_context=False, include_input=False))
        ) from None


class _DisconnectWatcher:
    """Cancels a task when the client goes away (an ASGI `http.disconnect`)."""

    def __init__(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        self.disconnected = False
        self._receive = receive
        self._task = task
        self._watch = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self._task.cancel()
                return

    async def close(self) -> None:
        self._watch.cancel()
        with contextlib.suppress(BaseException):
            await self._watch


class _ExecStreamResponse(Response):
    """NDJSON: one `ExecStreamEvent` per line as output arrives, then one `result` line.

    The command runs until it ends, times out, is killed by id, or the client disconnects (then its
    process group is killed)."""

    media_type = "application/x-ndjson"

    def __init__(
        self, start: Callable[[Callable[[str, bytes], Awaitable[None]]], Awaitable[ExecResult]]
    ) -> None:
        super().__init__(status_code=200, media_type=self.media_type)
        self._start = start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        decoders = {
            name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")
        }

        async def on_output(stream: str, data: bytes) -> None:
            text = decoders[stream].decode(data)
            if text:
                event = ExecStreamEvent(stream=stream, data=text)
                await queue.put(event.model_dump_json(exclude={"result"}).encode() + b"\n")

        async def produce() -> None:
            try:
                try:
                    result = await self._start(on_output)
                except ApiError as exc:  # the command could not start: say so in the stream
                    result = ExecResult(
                        exit_code=127, stdout="", stderr=str(exc.detail), duration_s=0.0
                    )
                except (ExecIdInUse, OSError) as exc:
                    result = ExecResult(exit_code=127, stdout="", stderr=str(exc), duration_s=0.0)
                line = ExecStreamEvent(stream="result", result=result).model_dump_json()
                queue.put_nowait(line.encode() + b"\n")
            finally:
                queue.put_nowait(None)  # also when cancelled: the sender loop must end

        task = asyncio.ensure_future(produce())
        watcher = _DisconnectWatcher(receive, task)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/x-ndjson"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            while (chunk := await queue.get()) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, asyncio.CancelledError):
            task.cancel()
            raise
        finally:
            await watcher.close()
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _git_version() -> str | None:
    try:
        out = subprocess.run(
            ["git", "--version"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().removeprefix("git version ") or None


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _memory() -> MemoryUsage:
    rss = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    # cgroup v2, then v1; "max" or a huge v1 value means no limit.
    used = _read_int("/sys/fs/cgroup/memory.current")
    limit = _read_int("/sys/fs/cgroup/memory.max")
    if used is None:
        used = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")
        limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    if limit is not None and limit >= 1 << 60:
        limit = None
    if used is None:
        with contextlib.suppress(OSError, ValueError):
            info = {
                k: int(v.split()[0]) * 1024
                for k, v in (
                    line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines()
                )
            }
            used = info["MemTotal"] - info["MemAvailable"]
            limit = limit or info["MemTotal"]
    return MemoryUsage(worker_rss_bytes=rss, used_bytes=used, limit_bytes=limit)


async def _workspace_bytes(workspace: Path) -> int | None:
    """`du -sb` of the workspace, bounded in time (None when it takes too long)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "du",
            "-sb",
            "--",
            str(workspace),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), INFO_DU_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    first = out.split(b"\t", 1)[0]
    return int(first) if first.isdigit() else None


def create_app(config: WorkerConfig) -> Starlette:
    workspace = config.workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    workspace = workspace.resolve()
    started = time.monotonic()
    token = config.token.encode()
    registry = ExecRegistry()
    make_inherited_fds_private()
    try:
        worker_version = metadata.version("anvyl-agent")
    except metadata.PackageNotFoundError:
        worker_version = "0+unknown"
    git_version: list[str | None] = []

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            given = ""
        return hmac.compare_digest(given.strip().encode(), token)

    Handler = Callable[[Request], Awaitable[Response]]

    def guarded(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                return _error(401, "missing or wrong worker token")
            return await _handle_errors(lambda: handler(request))

        return endpoint

    def json_endpoint(
        model: type[RequestT], action: Callable[[RequestT], Awaitable[BaseModel]]
    ) -> Handler:
        async def handler(request: Request) -> Response:
            return _json(await action(await _parse(request, model)))

        return guarded(handler)

    def in_thread(
        fn: Callable[[Path, RequestT], BaseModel],
    ) -> Callable[[RequestT], Awaitable[BaseModel]]:
        async def action(body: RequestT) -> BaseModel:
            return await asyncio.to_thread(fn, workspace, body)

        return action

    def repo_of(body: Any) -> Path:
        repo = resolve_inside(workspace, body.path)
        if not repo.is_dir():
            raise ApiError(400, f"{body.path!r} is not a directory")
        return repo

    # ------------------------------------------------------------------------------ endpoints

    async def health(_: Request) -> Response:
        # Open on purpose: the manager polls it before it has anything to say to the worker.
        return _json(
            Health(
                version=API_VERSION,
                workspace=str(workspace),
                uptime_s=round(time.monotonic() - started, 3),
            )
        )

    async def info(_: Request) -> Response:
        if not git_version:
            git_version.append(await asyncio.to_thread(_git_version))
        usage = shutil.disk_usage(workspace)
        return _json(
            Info(
                worker_version=worker_version,
                api_version=API_VERSION,
                python_version=platform.python_version(),
                git_version=git_version[0],
                uptime_s=round(time.monotonic() - started, 3),
                workspace=str(workspace),
                uid=os.getuid(),
                disk=DiskUsage(
                    total_bytes=usage.total,
                    used_bytes=usage.used,
                    free_bytes=usage.free,
                    workspace_bytes=await _workspace_bytes(workspace),
                ),
                memory=_memory(),
                running_execs=registry.ids(),
            )
        )

    def prepare_exec(body: ExecRequest) -> tuple[list[str], Path]:
        cwd = resolve_inside(workspace, body.cwd)
        if not cwd.is_dir():
            raise ApiError(400, f"cwd {body.cwd!r} is not a directory")
        argv = body.argv if body.argv is not None else ["/bin/sh", "-c", body.command or ""]
        return argv, cwd

    async def start_exec(
        body: ExecRequest,
        argv: list[str],
        cwd: Path,
        on_output: Callable[[str, bytes], Awaitable[None]] | None = None,
    ) -> ExecResult:
        try:
            return await run_command(
                argv,
                cwd=cwd,
                env=command_env(body.env),
                timeout_s=body.timeout_s,
                stdin=body.stdin,
                max_output_bytes=body.max_output_bytes,
                exec_id=body.exec_id,
                registry=registry,
                on_output=on_output,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise ApiError(400, f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc

    async def execute(request: Request) -> Response:
        body = await _parse(request, ExecRequest)
        argv, cwd = prepare_exec(body)
        task = asyncio.ensure_future(start_exec(body, argv, cwd))
        watcher = _DisconnectWatcher(request.receive, task)
        try:
            result = await task
        except asyncio.CancelledError:
            if watcher.disconnected:  # the client went away; the process group is already dead
                return Response(status_code=499)
            raise
        finally:
            await watcher.close()
        return _json(result)

    async def execute_stream(request: Request) -> Response:
        body = await _parse(request, ExecRequest)
        argv, cwd = prepare_exec(body)
        if body.exec_id is not None and body.exec_id in registry.ids():
            raise ExecIdInUse(f"a command with exec_id {body.exec_id!r} is already running")
        return _ExecStreamResponse(lambda on_output: start_exec(body, argv, cwd, on_output))

    async def kill(request: Request) -> Response:
        exec_id = request.path_params["exec_id"]
        if not registry.kill(exec_id):
            raise ApiError(404, f"no running command with exec_id {exec_id!r}")
        return _json(ExecKillResult(exec_id=exec_id, killed=True))

    clone_lock = asyncio.Lock()

    async def git_clone(body: GitCloneRequest) -> BaseModel:
        # One clone or fetch at a time: a second caller waits and then fetches the finished clone.
        async with clone_lock:
            return await gitops.clone_or_fetch(body, resolve_inside(workspace, body.dest))

    async def git_fetch(body: GitFetchRequest) -> BaseModel:
        return await gitops.fetch(body, repo_of(body))

    async def git_status(body: GitPathRequest) -> BaseModel:
        return await gitops.status(repo_of(body))

    async def git_diff(body: GitDiffRequest) -> BaseModel:
        return await gitops.diff(body, repo_of(body))

    async def git_log(body: GitLogRequest) -> BaseModel:
        return await gitops.log(body, repo_of(body))

    async def git_checkout(body: GitCheckoutRequest) -> BaseModel:
        return await gitops.checkout(body, repo_of(body))

    async def git_commit(body: GitCommitRequest) -> BaseModel:
        return await gitops.commit(body, repo_of(body))

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/info", guarded(info), methods=["GET"]),
        Route("/exec", guarded(execute), methods=["POST"]),
        Route("/exec/stream", guarded(execute_stream), methods=["POST"]),
        Route("/exec/{exec_id}/kill", guarded(kill), methods=["POST"]),
        Route(
            "/files/read",
            json_endpoint(FileReadRequest, in_thread(files.read_file)),
            methods=["POST"],
        ),
        Route(
            "/files/write",
            json_endpoint(FileWriteRequest, in_thread(files.write_file)),
            methods=["POST"],
        ),
        Route(
            "/files/list",
            json_endpoint(FileListRequest, in_thread(files.list_files)),
            methods=["POST"],
        ),
        Route(
            "/files/search", json_endpoint(SearchRequest, in_thread(files.search)), methods=["POST"]
        ),
        Route(
            "/files/delete",
            json_endpoint(FileDeleteRequest, in_thread(files.delete)),
            methods=["POST"],
        ),
        Route(
            "/files/move", json_endpoint(FileMoveRequest, in_thread(files.move)), methods=["POST"]
        ),
        Route("/git/clone", json_endpoint(GitCloneRequest, git_clone), methods=["POST"]),
        Route("/git/fetch", json_endpoint(GitFetchRequest, git_fetch), methods=["POST"]),
        Route("/git/status", json_endpoint(GitPathRequest, git_status), methods=["POST"]),
        Route("/git/diff", json_endpoint(GitDiffRequest, git_diff), methods=["POST"]),
        Route("/git/log", json_endpoint(GitLogRequest, git_log), methods=["POST"]),
        Route("/git/checkout", json_endpoint(GitCheckoutRequest, git_checkout), methods=["POST"]),
        Route("/git/commit", json_endpoint(GitCommitRequest, git_commit), methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        yield
        registry.kill_all()  # shutting down: no command outlives the worker

    async def http_error(_: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return _error(status, getattr(exc, "detail", "error"))

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
