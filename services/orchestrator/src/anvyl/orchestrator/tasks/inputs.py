"""A task's files: paths in its repository and uploaded files, placed in the workspace before the
loop starts and listed for the model. A task with uploads and no repository gets a scratch one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.worker.client import WorkerClient, WorkerError

MAX_UPLOAD_BYTES = 1024 * 1024  # one uploaded file
MAX_UPLOADS_BYTES = 5 * 1024 * 1024  # all of a task's uploaded files together
MAX_PATH_CHARS = 1024
_GIT_TIMEOUT_S = 30.0


def check_relative_path(value: str) -> str:
    """A path that stays inside the workspace: relative, no '..', not into .git. Returns it normalized."""
    if any(ord(ch) < 32 or ch == "\\" for ch in value):
        raise ValueError("must not contain control characters or backslashes")
    path = PurePosixPath(value)
    if path.is_absolute():
        raise ValueError(f"{value!r} is absolute: give a path relative to the repository root")
    parts = [part for part in path.parts if part != "."]
    if not parts:
        raise ValueError(f"{value!r} names no file")
    if ".." in parts:
        raise ValueError(f"{value!r} leaves the repository ('..' is not allowed)")
    if ".git" in parts:
        raise ValueError(f"{value!r} points into .git, which Anvyl manages")
    return "/".join(parts)


def check_local_path(repo_root: Path, value: str) -> None:
    """A path of a repository on this machine: it exists and (following links) stays inside it."""
    root = repo_root.resolve()
    target = (root / value).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"{value!r} leads outside the repository")
    if not target.is_file():
        raise ValueError(f"{value!r} is not a file in the repository")


@dataclass(frozen=True)
class TaskFiles:
    paths: list[str]  # already in the repository
    uploads: dict[str, str]  # name -> content, written into the workspace

    @classmethod
    def of(cls, request: dict[str, Any] | None) -> TaskFiles:
        """From the stored request body (validated when the task was accepted)."""
        entries = (request or {}).get("files") or []
        return cls(
            paths=[e for e in entries if isinstance(e, str)],
            uploads={e["name"]: e["content"] for e in entries if isinstance(e, dict)},
        )

    def __bool__(self) -> bool:
        return bool(self.paths or self.uploads)

    def note(self) -> str:
        """What the model is told along with the request."""
        lines = [f"- {p} (in the repository)" for p in self.paths]
        lines += [f"- {n} (uploaded, {len(c.encode())} bytes)" for n, c in self.uploads.items()]
        return (
            "Files given with this request, relative to the workspace root (read them with "
            "read_file):\n" + "\n".join(lines)
        )

    async def place(self, client: WorkerClient) -> None:
        """Write the uploads into the workspace and check that the named paths are in it."""
        for name, content in self.uploads.items():
            try:
                await client.write_file(name, content)
            except WorkerError as exc:
                raise WorkspaceError(
                    f"files: cannot write {name!r} into the workspace: {exc}"
                ) from exc
        for path in self.paths:
            try:
                await client.read_file(path, max_bytes=1)
            except WorkerError as exc:
                raise WorkspaceError(f"files: {path!r} is not in the repository: {exc}") from exc


async def create_scratch_repo(directory: Path) -> Path:
    """An empty git repository (one empty commit) to give a task without a repository a workspace.

    The caller removes the directory, also when this fails."""
    directory.mkdir(parents=True, exist_ok=False)
    git = ["git", "-c", "user.name=Anvyl", "-c", "user.email=anvyl@localhost", "-C", str(directory)]
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "scratch"]):
        process = await asyncio.create_subprocess_exec(
            *git, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            async with asyncio.timeout(_GIT_TIMEOUT_S):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise WorkspaceError(f"git {args[0]} of the scratch workspace timed out") from None
        if process.returncode != 0:
            raise WorkspaceError(f"cannot create a scratch workspace: {output.decode()[-500:]}")
    return directory
