"""What a task needs of its named agent, asked when it runs (the agents package answers), so that
the tasks package does not import the one above it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from anvyl.orchestrator.llm import ModelRouter
from anvyl.orchestrator.loop.agent_loop import TaskPolicy
from anvyl.orchestrator.workspaces.repos import RepoRef


class AgentUnavailable(RuntimeError):
    """The task's agent is gone, or its model chain cannot be built (the message says why)."""


@dataclass(frozen=True)
class AgentRun:
    name: str
    router: ModelRouter  # its provider, then its backups (keys decrypted in memory only)
    system_prompt: str | None  # added to Anvyl's
    policy: TaskPolicy  # when the request brings none
    max_steps: int | None
    repo: RepoRef  # its own workspace: id and worker label


class AgentProfiles(Protocol):
    async def for_task(self, name: str) -> AgentRun:
        """The agent as it is now; raises AgentUnavailable."""
        ...
