"""The memory interface: both backends (database, cognee) answer it."""

from __future__ import annotations

from typing import Protocol

from anvyl.orchestrator.memory.records import Hit, Scope, Snippet, TaskMemory


class Memory(Protocol):
    name: str

    async def remember_task(self, memory: TaskMemory) -> None:
        """Keep a finished task's summary."""

    async def add_files(self, archive: str, files: dict[str, list[Snippet]]) -> int:
        """Replace what is kept of these archive files (path: its snippets); returns how many
        snippets were kept."""

    async def forget_file(self, archive: str, path: str) -> int:
        """Drop one archive file's snippets; returns how many."""

    async def search(
        self,
        query: str,
        *,
        scope: Scope = "all",
        workspace_id: str | None = None,
        agent: str | None = None,
        limit: int = 10,
    ) -> list[Hit]:
        """The items most relevant to `query`, best first. Task memories are limited to the given
        workspace or agent when one is given; archive snippets are everyone's."""

    async def forget(
        self, *, workspace_id: str | None = None, agent: str | None = None,
        archive: str | None = None,
    ) -> int:  # fmt: skip
        """Drop what the workspace's tasks, the agent's tasks or the archive left; returns how many."""

    async def close(self) -> None: ...
