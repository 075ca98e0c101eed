"""What every route module uses: the worker's state, request parsing and JSON error answers.

Errors are JSON `{"detail": ...}` like FastAPI's; request validation errors are 422.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from anvyl.worker.files import FileOperationError
from anvyl.worker.git import GitArgumentError, GitCommandFailed, NothingToCommit
from anvyl.worker.paths import InvalidPath, PathOutsideWorkspace, resolve_inside
from anvyl.worker.processes import ExecIdInUse, ExecRegistry

MAX_BODY_BYTES = 120 * 1024 * 1024

RequestT = TypeVar("RequestT", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]
Guard = Callable[[Handler], Handler]


@dataclass(frozen=True)
class WorkerState:
    """What the routes share: the workspace directory, the running commands, the start time."""

    workspace: Path
    registry: ExecRegistry
    started: float

    def directory(self, path: str, what: str) -> Path:
        """`path` resolved inside the workspace; a 400 naming `what` when it is not a directory."""
        resolved = resolve_inside(self.workspace, path)
        if not resolved.is_dir():
            raise ApiError(400, f"{what} is not a directory")
        return resolved


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def json_response(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def error_response(status: int, detail: Any) -> JSONResponse:
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
        return error_response(504, f"timed out: {exc}")
    status = _ERRNO_STATUS.get(exc.errno or 0, 400)
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    name = Path(exc.filename).name if isinstance(exc.filename, str) else None
    return error_response(status, f"{reason}: {name!r}" if name else reason)


async def handle_errors(call: Callable[[], Awaitable[Response]]) -> Response:
    """Map the worker's own exceptions to clear 4xx answers; anything else is a real 500."""
    try:
        return await call()
    except ApiError as exc:
        return error_response(exc.status, exc.detail)
    except PathOutsideWorkspace as exc:
        return error_response(403, str(exc))
    except InvalidPath as exc:
        return error_response(400, str(exc))
    except FileOperationError as exc:
        return error_response(exc.status, str(exc))
    except NothingToCommit as exc:
        return error_response(409, str(exc))
    except GitCommandFailed as exc:
        return error_response(422, str(exc))
    except GitArgumentError as exc:
        return error_response(400, str(exc))
    except ExecIdInUse as exc:
        return error_response(409, str(exc))
    except OSError as exc:
        return _os_error_response(exc)
    except (UnicodeError, re.error) as exc:
        return error_response(400, str(exc))


async def parse_body(request: Request, model: type[RequestT]) -> RequestT:
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


def json_endpoint(
    guard: Guard, model: type[RequestT], action: Callable[[RequestT], Awaitable[BaseModel]]
) -> Handler:
    """A guarded route that parses its JSON body into `model` and answers `action`'s model."""

    async def handler(request: Request) -> Response:
        return json_response(await action(await parse_body(request, model)))

    return guard(handler)


class DisconnectWatcher:
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
