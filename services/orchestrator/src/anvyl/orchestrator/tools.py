"""Workspace tools: what a planner or a model may call, run inside the task's worker.

Each call is recorded (name, arguments, outcome, duration) for the task's events and metadata.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel

from anvyl.agent.client import WorkerClient, WorkerError
from anvyl.agent.models import ExecRequest, ExecResult

MAX_READ_BYTES = 100_000


class ToolError(RuntimeError):
    """A tool was called with bad arguments, or its command failed."""


class ToolCall(BaseModel):
    name: str
    arguments: dict[str, Any]
    ok: bool = False
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    duration_s: float = 0.0


def relative_path(path: str) -> str:
    """A path relative to the repository root; the worker refuses escapes too, this fails earlier."""
    candidate = PurePosixPath(path.strip() or ".")
    if candidate.is_absolute() or ".." in candidate.parts or path.startswith("-"):
        raise ToolError(f"path {path!r} must be relative to the repository and stay inside it")
    return str(candidate)


class WorkspaceTools:
    def __init__(self, client: WorkerClient, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self._tools: dict[str, Callable[..., Awaitable[str]]] = {
            "list_files": self.list_files,
            "read_file": self.read_file,
            "git_status": self.git_status,
            "git_log": self.git_log,
            "run_shell": self.run_shell,
        }

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolCall:
        record = ToolCall(name=name, arguments=arguments)
        started = time.perf_counter()
        try:
            tool = self._tools.get(name)
            if tool is None:
                raise ToolError(f"unknown tool {name!r}; available: {', '.join(self._tools)}")
            record.output = await tool(**arguments)
            record.ok = True
        except (ToolError, WorkerError, TypeError) as exc:
            record.error = str(exc)
        record.duration_s = round(time.perf_counter() - started, 6)
        return record

    async def _exec(self, argv: list[str]) -> ExecResult:
        result = await self.client.exec(ExecRequest(argv=argv, timeout_s=self.timeout_s))
        if result.exit_code != 0:
            raise ToolError(
                f"{argv[0]} exited with {result.exit_code}: {result.stderr.strip()[:2000]}"
            )
        return result

    async def list_files(self, path: str = ".") -> str:
        result = await self._exec(["ls", "-1Ap", "--", relative_path(path)])
        return result.stdout

    async def read_file(self, path: str) -> str:
        result = await self._exec(["head", "-c", str(MAX_READ_BYTES), "--", relative_path(path)])
        return result.stdout

    async def git_status(self) -> str:
        return (await self._exec(["git", "status", "--short", "--branch"])).stdout

    async def git_log(self, limit: int = 20) -> str:
        return (await self._exec(["git", "log", "--oneline", "-n", str(int(limit))])).stdout

    async def run_shell(self, command: str, timeout_s: float | None = None) -> str:
        request = ExecRequest(command=command, timeout_s=timeout_s or self.timeout_s)
        result = await self.client.exec(request)
        return f"exit code {result.exit_code}\n{result.stdout}{result.stderr}"
