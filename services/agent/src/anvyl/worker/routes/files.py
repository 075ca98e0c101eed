"""`POST /files/*`: the file operations of `anvyl.worker.files`, each run in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import BaseModel
from starlette.routing import Route

from anvyl.worker import files
from anvyl.worker.models import (
    FileDeleteRequest,
    FileListRequest,
    FileMoveRequest,
    FileReadRequest,
    FileWriteRequest,
    SearchRequest,
)
from anvyl.worker.routes.common import Guard, RequestT, WorkerState, json_endpoint


def routes(state: WorkerState, guard: Guard) -> list[Route]:
    def in_thread(
        fn: Callable[[Path, RequestT], BaseModel],
    ) -> Callable[[RequestT], Awaitable[BaseModel]]:
        async def action(body: RequestT) -> BaseModel:
            return await asyncio.to_thread(fn, state.workspace, body)

        return action

    def post(path: str, model: type[RequestT], fn: Callable[[Path, RequestT], BaseModel]) -> Route:
        return Route(path, json_endpoint(guard, model, in_thread(fn)), methods=["POST"])

    return [
        post("/files/read", FileReadRequest, files.read_file),
        post("/files/write", FileWriteRequest, files.write_file),
        post("/files/list", FileListRequest, files.list_files),
        post("/files/search", SearchRequest, files.search),
        post("/files/delete", FileDeleteRequest, files.delete),
        post("/files/move", FileMoveRequest, files.move),
    ]
