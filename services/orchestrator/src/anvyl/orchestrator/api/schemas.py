"""Request and response bodies of the task API."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from anvyl.orchestrator.db.tables import Task, TaskEvent
from anvyl.orchestrator.loop.agent_loop import TaskPolicy
from anvyl.orchestrator.workspaces.repos import redact_url

MAX_QUERY_CHARS = 20_000


class OrchestrateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    query: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, description="what the agent should do"
    )
    repo_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="local git repository path or git URL",
    )
    files: list[str] = Field(default_factory=list, max_length=100, description="files to focus on")
    agent: str | None = Field(default=None, max_length=100, description="agent profile name")
    model: str | None = Field(default=None, max_length=200, description="model endpoint to prefer")
    workspace_id: str | None = Field(default=None, max_length=128, pattern=r"^[a-z0-9][a-z0-9-]*$")
    timeout_s: float | None = Field(default=None, gt=0, description="wall-clock limit of the task")
    mode: Literal["sync", "background"] = "sync"
    policy: TaskPolicy | None = Field(default=None, description="tool allow-list and pre-approvals")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is empty: say what the agent should do")
        return value

    def fingerprint(self) -> str:
        """What an Idempotency-Key is bound to: the request body, canonically serialized."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class TaskOut(BaseModel):
    task_id: str
    status: str
    query: str
    repo_url: str | None
    workspace_id: str | None
    result: str | None
    error: str | None
    metadata: dict[str, Any]
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, task: Task) -> TaskOut:
        return cls(
            task_id=task.id,
            status=task.status,
            query=task.query,
            repo_url=redact_url(task.repo_url) if task.repo_url else None,
            workspace_id=task.workspace_id,
            result=task.result,
            error=task.error,
            metadata=task.meta or {},
            attempts=task.attempts,
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
        )


class Accepted(BaseModel):
    task_id: str
    status: str


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    next_offset: int | None


class EventOut(BaseModel):
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, event: TaskEvent) -> EventOut:
        return cls(seq=event.seq, type=event.type, data=event.data, created_at=event.created_at)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: str | None = Field(default=None, description="the pending call (checked when given)")
    note: str | None = Field(default=None, max_length=2000, description="shown to the model")


class Problem(BaseModel):
    detail: str
    errors: list[dict[str, Any]] | None = None
