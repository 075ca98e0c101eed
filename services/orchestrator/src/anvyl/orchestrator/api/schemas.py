"""Request and response bodies of the task API."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from anvyl.orchestrator.db.tables import Task, TaskEvent
from anvyl.orchestrator.loop.agent_loop import TaskPolicy
from anvyl.orchestrator.tasks.inputs import (
    MAX_PATH_CHARS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOADS_BYTES,
    check_relative_path,
)
from anvyl.orchestrator.workspaces.repos import redact_url

MAX_QUERY_CHARS = 20_000
# Task states, as the store names them (a test checks they agree with tasks.store.ALL_STATES).
TaskStatus = Literal["queued", "running", "waiting_approval", "succeeded", "failed", "cancelled"]
# Event seq numbers and list offsets: far beyond any real value, inside the database's integers.
MAX_SEQ = 999_999_999
MAX_OFFSET = 2**31 - 1

RelativePath = Annotated[
    str, Field(min_length=1, max_length=MAX_PATH_CHARS), AfterValidator(check_relative_path)
]


class FileUpload(BaseModel):
    """A file sent with the request, written into the task's workspace before the agent loop starts."""

    model_config = ConfigDict(extra="forbid")

    name: RelativePath = Field(description="path relative to the workspace root, e.g. notes/a.md")
    content: str = Field(max_length=MAX_UPLOAD_BYTES, description="the file's text (UTF-8)")

    @field_validator("content")
    @classmethod
    def _size(cls, value: str) -> str:
        if len(value.encode()) > MAX_UPLOAD_BYTES:
            raise ValueError(f"longer than {MAX_UPLOAD_BYTES} bytes (UTF-8)")
        return value


FileEntry = Annotated[
    Annotated[RelativePath, Tag("path")] | Annotated[FileUpload, Tag("upload")],
    Discriminator(lambda value: "path" if isinstance(value, str) else "upload"),
]


class OrchestrateRequest(BaseModel):
    # Surrounding whitespace is stripped after the length checks (see _stripped), so that the
    # documented maxLength holds for the text as sent.
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="what to do")
    repo_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="local git repository path or git URL",
    )
    files: list[FileEntry] = Field(
        default_factory=list,
        max_length=100,
        description="a path in the repository (needs repo_url or workspace_id), or a file to "
        f"upload as {{name, content}} (at most {MAX_UPLOAD_BYTES} bytes each, "
        f"{MAX_UPLOADS_BYTES} together); the model is told about them",
    )
    agent: str | None = Field(
        default=None,
        max_length=100,
        description="run as this named agent (POST /agents): its models, prompt, policy and workspace",
    )
    model: str | None = Field(
        default=None, max_length=200, description="configured model endpoint to try first"
    )
    workspace_id: str | None = Field(default=None, max_length=128, pattern=r"^[a-z0-9][a-z0-9-]*$")
    timeout_s: float | None = Field(default=None, gt=0, description="wall-clock limit of the task")
    mode: Literal["sync", "background"] = "sync"
    policy: TaskPolicy | None = Field(default=None, description="tool allow-list and pre-approvals")

    @field_validator("query", "repo_url", "agent", "model")
    @classmethod
    def _stripped(cls, value: str | None) -> str | None:
        return None if value is None else value.strip()

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value:
            raise ValueError("query is empty: say what to do")
        return value

    @field_validator("files")
    @classmethod
    def _distinct_and_small(cls, files: list[str | FileUpload]) -> list[str | FileUpload]:
        names = [f if isinstance(f, str) else f.name for f in files]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"each file may be given once; repeated: {', '.join(repeated)}")
        total = sum(len(f.content.encode()) for f in files if isinstance(f, FileUpload))
        if total > MAX_UPLOADS_BYTES:
            raise ValueError(f"uploaded files total {total} bytes, more than {MAX_UPLOADS_BYTES}")
        return files

    def fingerprint(self) -> str:
        """What an Idempotency-Key is bound to: the request body, canonically serialized."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class ActRequest(BaseModel):
    """POST /agents/NAME/act: a task for the agent (its workspace and models are its own)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="what to do")
    files: list[FileEntry] = Field(default_factory=list, max_length=100,
                                   description="as in POST /orchestrate")  # fmt: skip
    timeout_s: float | None = Field(default=None, gt=0, description="default: the agent's")
    mode: Literal["sync", "background"] = "sync"
    policy: TaskPolicy | None = Field(default=None, description="default: the agent's policy")

    def as_orchestrate(self, agent: str) -> OrchestrateRequest:
        return OrchestrateRequest.model_validate(self.model_dump() | {"agent": agent})


class TaskOut(BaseModel):
    task_id: str
    status: TaskStatus
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
    status: TaskStatus


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
