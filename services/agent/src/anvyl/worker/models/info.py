"""`GET /health` and `GET /info`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = "ok"
    version: str
    workspace: str
    uptime_s: float = 0.0


class DiskUsage(BaseModel):
    total_bytes: int
    used_bytes: int
    free_bytes: int
    workspace_bytes: int | None = (
        None  # size of the workspace tree (None: too big to count in time)
    )


class MemoryUsage(BaseModel):
    worker_rss_bytes: int | None = None
    used_bytes: int | None = None  # the container's cgroup (or the host when there is none)
    limit_bytes: int | None = None


class Info(BaseModel):
    worker_version: str
    api_version: str
    python_version: str
    git_version: str | None
    uptime_s: float
    workspace: str
    uid: int
    disk: DiskUsage
    memory: MemoryUsage
    running_execs: list[str] = Field(default_factory=list)
