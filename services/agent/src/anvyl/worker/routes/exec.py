"""`POST /exec` (one answer), `POST /exec/stream` (NDJSON as output comes) and the kill route.

Commands get the worker's base environment (never its token) plus the request's `env`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from anvyl.worker import TOKEN_ENV
from anvyl.worker.git import base_env, git_env
from anvyl.worker.models import ExecKillResult, ExecRequest, ExecResult, ExecStreamEvent
from anvyl.worker.processes import ExecIdInUse, run_command
from anvyl.worker.routes.common import (
    ApiError,
    DisconnectWatcher,
    Guard,
    WorkerState,
    json_response,
    parse_body,
)

OutputCallback = Callable[[str, bytes], Awaitable[None]]


def command_env(extra: dict[str, str]) -> dict[str, str]:
    env = git_env(base_env())
    env.update(extra)
    env.pop(TOKEN_ENV, None)
    return env


class ExecStreamResponse(Response):
    """NDJSON: one `ExecStreamEvent` per line as output arrives, then one `result` line.

    The command runs until it ends, times out, is killed by id, or the client disconnects (then its
    process group is killed)."""

    media_type = "application/x-ndjson"

    def __init__(self, start: Callable[[OutputCallback], Awaitable[ExecResult]]) -> None:
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
        watcher = DisconnectWatcher(receive, task)
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


def routes(state: WorkerState, guard: Guard) -> list[Route]:
    registry = state.registry

    def prepare_exec(body: ExecRequest) -> tuple[list[str], Path]:
        cwd = state.directory(body.cwd, f"cwd {body.cwd!r}")
        argv = body.argv if body.argv is not None else ["/bin/sh", "-c", body.command or ""]
        return argv, cwd

    async def start_exec(
        body: ExecRequest, argv: list[str], cwd: Path, on_output: OutputCallback | None = None
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
        body = await parse_body(request, ExecRequest)
        argv, cwd = prepare_exec(body)
        task = asyncio.ensure_future(start_exec(body, argv, cwd))
        watcher = DisconnectWatcher(request.receive, task)
        try:
            result = await task
        except asyncio.CancelledError:
            if watcher.disconnected:  # the client went away; the process group is already dead
                return Response(status_code=499)
            raise
        finally:
            await watcher.close()
        return json_response(result)

    async def execute_stream(request: Request) -> Response:
        body = await parse_body(request, ExecRequest)
        argv, cwd = prepare_exec(body)
        if body.exec_id is not None and body.exec_id in registry.ids():
            raise ExecIdInUse(f"a command with exec_id {body.exec_id!r} is already running")
        return ExecStreamResponse(lambda on_output: start_exec(body, argv, cwd, on_output))

    async def kill(request: Request) -> Response:
        exec_id = request.path_params["exec_id"]
        if not registry.kill(exec_id):
            raise ApiError(404, f"no running command with exec_id {exec_id!r}")
        return json_response(ExecKillResult(exec_id=exec_id, killed=True))

    return [
        Route("/exec", guard(execute), methods=["POST"]),
        Route("/exec/stream", guard(execute_stream), methods=["POST"]),
        Route("/exec/{exec_id}/kill", guard(kill), methods=["POST"]),
    ]
