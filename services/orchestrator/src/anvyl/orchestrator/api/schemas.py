"""Request and response bodies of the task API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from anvyl.orchestrator.db.tables import Task
from anvyl.orchestrator.workspaces.repos import redact_url

MAX_QUERY_CHARS = 20_000


class OrchestrateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    query: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, description="what the agent should do"
    )
    repo_url: str = Field(
        min_length=1, max_length=4096, description="local git repository path or git URL"
    )
    mode: Literal["sync"] = "sync"

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is empty: say what the agent should do")
        return value


class TaskOut(BaseModel):
    task_id: str
    status: str
    query: str
    repo_url: str | None
    workspace_id: str | None
    result: str | None
    error: str | None
    metadata: dict[str, Any]
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
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
        )


class Problem(BaseModel):
    detail: str
    errors: list[dict[str, Any]] | None = None
