"""What goes into memory and what comes out of it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Scope = Literal["all", "tasks", "archives"]
TASK = "task"
ARCHIVE = "archive"


class TaskMemory(BaseModel):
    """A finished task's summary, kept per workspace and per agent."""

    task_id: str
    text: str
    workspace_id: str | None = None
    agent: str | None = None


class Snippet(BaseModel):
    """A piece of an archive's file: its lines `line_start`..`line_end` (1-based, inclusive)."""

    text: str
    line_start: int
    line_end: int


class Hit(BaseModel):
    """One search result with where it came from."""

    kind: Literal["task", "archive"]
    text: str
    score: float = Field(description="higher is more relevant; comparable within one answer only")
    workspace_id: str | None = None
    agent: str | None = None
    task_id: str | None = None
    archive: str | None = None
    path: str | None = None
    line_start: int | None = None
    line_end: int | None = None
    created_at: datetime | None = None

    @property
    def source(self) -> str:
        if self.kind == ARCHIVE:
            return f"{self.archive}:{self.path}:{self.line_start}-{self.line_end}"
        where = f"workspace {self.workspace_id}" if self.workspace_id else "no workspace"
        return f"task {self.task_id} ({where}{f', agent {self.agent}' if self.agent else ''})"
