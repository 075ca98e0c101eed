"""Tools a model (or the built-in planner) may call: the workspace's, and those of MCP servers.

A `Tool` is a name, a JSON schema, truthful flags (read-only, destructive) and an async function.
`Toolset.call` validates the arguments, runs the tool and records the outcome; a failing tool comes
back as an error result for the model, never as a crash of the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anvyl.orchestrator.llm import FunctionDefinition, ToolDefinition
from anvyl.worker.client import WorkerClient, WorkerError
from anvyl.worker.models import ExecRequest, GitCommitRequest, GitDiffRequest, GitLogRequest

MAX_READ_BYTES = 200_000
_KILL_TIMEOUT_S = 5.0


class ToolError(RuntimeError):
    """A tool was called with bad arguments, or what it ran failed."""


class ToolCall(BaseModel):
    """The record of one call: what was asked and what came of it."""

    id: str = ""
    name: str
    arguments: dict[str, Any]
    ok: bool = False
    output: str = ""
    error: str | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    read_only: bool
    destructive: bool
    run: Callable[[dict[str, Any]], Awaitable[str]]
    source: str = "workspace"

    def definition(self) -> ToolDefinition:
        return ToolDefinition(function=FunctionDefinition(
            name=self.name, description=self.description, parameters=self.parameters))  # fmt: skip


class ToolSource(Protocol):
    """Tools offered beside the workspace's and the MCP servers' (the host tools), chosen for one
    task from its stored request (a forwarded query's tools forward it further)."""

    def tools_for(self, request: dict[str, Any]) -> list[Tool]: ...


class Toolset:
    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools = {tool.name: tool for tool in tools}

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def definitions(self) -> list[ToolDefinition]:
        return [tool.definition() for tool in self._tools.values()]

    async def call(self, name: str, arguments: dict[str, Any], call_id: str = "") -> ToolCall:
        record = ToolCall(id=call_id, name=name, arguments=arguments)
        started = time.perf_counter()
        tool = self._tools.get(name)
        try:
            if tool is None:
                raise ToolError(f"unknown tool {name!r}; available: {', '.join(self._tools)}")
            record.output = await tool.run(arguments)
            record.ok = True
        except ValidationError as exc:
            record.error = f"bad arguments for {name}: {_validation_summary(exc)}"
        except (ToolError, WorkerError) as exc:
            record.error = str(exc)
        record.duration_s = round(time.perf_counter() - started, 6)
        return record


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )


def relative_path(path: str) -> str:
    """A path relative to the repository root; the worker refuses escapes too, this fails earlier."""
    candidate = PurePosixPath(path.strip() or ".")
    if candidate.is_absolute() or ".." in candidate.parts or path.startswith("-"):
        raise ToolError(f"path {path!r} must be relative to the repository and stay inside it")
    return str(candidate)


# Workspace tools ------------------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunShellArgs(_Args):
    command: str = Field(
        min_length=1, description="shell command, run by /bin/sh -c in the repository"
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="seconds before it is killed"
    )


class PathArgs(_Args):
    path: str = Field(default=".", description="path relative to the repository root")


class ReadFileArgs(_Args):
    path: str = Field(description="file path relative to the repository root")
    start_line: int | None = Field(default=None, ge=1, description="first line to read (1-based)")
    end_line: int | None = Field(default=None, ge=1, description="last line to read")


class WriteFileArgs(_Args):
    path: str = Field(description="file path relative to the repository root")
    content: str = Field(description="the whole new content of the file")


class SearchArgs(_Args):
    pattern: str = Field(min_length=1, description="regular expression")
    path: str = Field(default=".", description="directory to search, relative to the repository")


class CommitArgs(_Args):
    message: str = Field(min_length=1, description="commit message")


class LogArgs(_Args):
    limit: int = Field(default=20, ge=1, le=200, description="how many commits")


class NoArgs(_Args):
    pass


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    # A copy: callers may adapt a schema to their provider.
    return copy.deepcopy(_generated_schema(model))


@functools.cache
def _generated_schema(model: type[BaseModel]) -> dict[str, Any]:
    # Generating a JSON schema is slow (milliseconds per tool); the models do not change.
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


class WorkspaceTools:
    """The tools that run inside a task's workspace, through its worker."""

    def __init__(
        self, client: WorkerClient, timeout_s: float, author: tuple[str, str] | None = None
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.author = author or ("Anvyl Agent", "agent@anvyl.invalid")

    def tools(self) -> list[Tool]:
        def tool(name: str, description: str, args: type[BaseModel], run: Callable[[Any], Awaitable[str]],
                 read_only: bool) -> Tool:  # fmt: skip
            async def validated(arguments: dict[str, Any]) -> str:
                return await run(args.model_validate(arguments))

            return Tool(name, description, _schema(args), read_only, False, validated)

        return [
            tool("run_shell", "Run a shell command in the repository; answers exit code and output.",
                 RunShellArgs, self.run_shell, read_only=False),
            tool("list_files", "List the files of a directory of the repository.", PathArgs,
                 self.list_files, read_only=True),
            tool("read_file", "Read a file of the repository, optionally only some lines.", ReadFileArgs,
                 self.read_file, read_only=True),
            tool("write_file", "Write (create or replace) a file of the repository.", WriteFileArgs,
                 self.write_file, read_only=False),
            tool("search_files", "Search the repository's files for a regular expression.", SearchArgs,
                 self.search_files, read_only=True),
            tool("git_status", "Show the branch and the changed files.", NoArgs, self.git_status,
                 read_only=True),
            tool("git_diff", "Show the uncommitted changes as a diff.", NoArgs, self.git_diff, read_only=True),
            tool("git_commit", "Commit all changes with a message.", CommitArgs, self.git_commit,
                 read_only=False),
            tool("git_log", "Show recent commits.", LogArgs, self.git_log, read_only=True),
        ]  # fmt: skip

    async def run_shell(self, args: RunShellArgs) -> str:
        exec_id = uuid.uuid4().hex
        request = ExecRequest(
            command=args.command, timeout_s=args.timeout_s or self.timeout_s, exec_id=exec_id
        )
        try:
            result = await self.client.exec(request)
        except asyncio.CancelledError:
            # The task was cancelled or timed out: the command must not outlive it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.client.kill(exec_id)), _KILL_TIMEOUT_S)
            raise
        parts = [f"exit code {result.exit_code}" + (" (timed out)" if result.timed_out else "")]
        if result.stdout:
            parts.append(result.stdout.rstrip("\n"))
        if result.stderr:
            parts.append("stderr:\n" + result.stderr.rstrip("\n"))
        return "\n".join(parts)

    async def list_files(self, args: PathArgs) -> str:
        listing = await self.client.list_files(relative_path(args.path), depth=1)
        names = [
            PurePosixPath(e.path).name + ("/" if e.type == "dir" else "") for e in listing.entries
        ]
        return "\n".join(sorted(names))

    async def read_file(self, args: ReadFileArgs) -> str:
        content = await self.client.read_file(relative_path(args.path), start_line=args.start_line,
                                              end_line=args.end_line, max_bytes=MAX_READ_BYTES)  # fmt: skip
        if content.binary:
            return f"{content.path} is a binary file of {content.size} bytes"
        return content.content + ("\n[truncated]" if content.truncated else "")

    async def write_file(self, args: WriteFileArgs) -> str:
        written = await self.client.write_file(relative_path(args.path), args.content)
        return f"wrote {written.path} ({len(args.content.encode())} bytes)"

    async def search_files(self, args: SearchArgs) -> str:
        found = await self.client.search(args.pattern, relative_path(args.path))
        lines = [f"{m.path}:{m.line}: {m.text}" for m in found.matches]
        return (
            "\n".join(lines) + ("\n[more matches not shown]" if found.truncated else "")
            or "no matches"
        )

    async def git_status(self, _: NoArgs) -> str:
        status = await self.client.git_status()
        head = f"## {status.branch or '(detached)'}" + (
            f"...{status.upstream}" if status.upstream else ""
        )
        return "\n".join([head, *(f"{e.index}{e.worktree} {e.path}" for e in status.entries)])

    async def git_diff(self, _: NoArgs) -> str:
        diff = await self.client.git_diff(GitDiffRequest())
        return diff.diff or "no uncommitted changes"

    async def git_commit(self, args: CommitArgs) -> str:
        name, email = self.author
        commit = await self.client.git_commit(GitCommitRequest(message=args.message, add_all=True,
                                                               author_name=name, author_email=email))  # fmt: skip
        return json.dumps(commit.model_dump(mode="json"))

    async def git_log(self, args: LogArgs) -> str:
        log = await self.client.git_log(GitLogRequest(n=args.limit))
        return "\n".join(f"{c.sha[:10]} {c.subject}" for c in log.commits)
