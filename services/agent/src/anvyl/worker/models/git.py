"""`POST /git/*`: clone, fetch, status, diff, log, checkout, commit."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from anvyl.worker.models.common import MAX_OUTPUT_BYTES, StrictModel, check_os_string


class GitCloneRequest(StrictModel):
    url: str = Field(min_length=1, max_length=4096)
    ref: str | None = Field(default=None, max_length=255)
    depth: int | None = Field(default=None, gt=0)
    dest: str = "."


class GitCloneResult(BaseModel):
    action: str  # "cloned" or "fetched"
    path: str
    head: str


class GitFetchRequest(StrictModel):
    path: str = "."
    remote: str = Field(default="origin", min_length=1, max_length=4096)
    ref: str | None = Field(default=None, max_length=255)
    depth: int | None = Field(default=None, gt=0)
    prune: bool = True


class GitFetchResult(BaseModel):
    path: str
    remote: str
    head: str | None
    output: str


class GitPathRequest(StrictModel):
    path: str = "."


class GitStatusEntry(BaseModel):
    path: str
    orig_path: str | None = None  # renames and copies
    index: str  # porcelain X: ' ', M, A, D, R, C, U, '?' or '!'
    worktree: str  # porcelain Y
    kind: Literal["changed", "renamed", "unmerged", "untracked", "ignored"]


class GitStatus(BaseModel):
    path: str
    branch: str | None  # None when HEAD is detached
    head: str | None  # None before the first commit
    upstream: str | None = None
    ahead: int = 0
    behind: int = 0
    clean: bool
    entries: list[GitStatusEntry]


class GitDiffRequest(StrictModel):
    path: str = "."
    staged: bool = False
    ref: str | None = Field(default=None, max_length=255)
    paths: list[str] = Field(default_factory=list, max_length=1000)
    context_lines: int = Field(default=3, ge=0, le=1000)
    max_bytes: int = Field(default=MAX_OUTPUT_BYTES, gt=0, le=10 * MAX_OUTPUT_BYTES)


class GitDiffFile(BaseModel):
    path: str
    added: int | None  # None for binary files
    deleted: int | None


class GitDiff(BaseModel):
    diff: str
    files: list[GitDiffFile]
    truncated: bool = False


class GitLogRequest(StrictModel):
    path: str = "."
    n: int = Field(default=20, gt=0, le=10_000)
    ref: str | None = Field(default=None, max_length=255)
    paths: list[str] = Field(default_factory=list, max_length=1000)


class GitCommitInfo(BaseModel):
    sha: str
    parents: list[str]
    author_name: str
    author_email: str
    authored_at: str  # ISO 8601
    committer_name: str
    committer_email: str
    subject: str
    body: str


class GitLog(BaseModel):
    commits: list[GitCommitInfo]


class GitCheckoutRequest(StrictModel):
    path: str = "."
    ref: str = Field(min_length=1, max_length=255)
    create: bool = False  # create branch `ref` (from `start_point`, default HEAD) and switch to it
    start_point: str | None = Field(default=None, max_length=255)


class GitCheckoutResult(BaseModel):
    path: str
    branch: str | None  # None when HEAD is detached
    head: str


class GitCommitRequest(StrictModel):
    path: str = "."
    message: str = Field(min_length=1, max_length=100_000)
    author_name: str | None = Field(default=None, min_length=1, max_length=200)
    author_email: str | None = Field(default=None, min_length=1, max_length=200)
    add_all: bool = False  # `git add --all` first
    paths: list[str] = Field(default_factory=list, max_length=1000)  # `git add -- paths` first
    allow_empty: bool = False

    @field_validator("message")
    @classmethod
    def _message_ok(cls, value: str) -> str:
        return check_os_string(value, "message")

    @field_validator("author_name", "author_email")
    @classmethod
    def _ident_ok(cls, value: str | None) -> str | None:
        if value is not None:
            check_os_string(value, "author")
            if any(c in value for c in "<>\n\r") or not value.strip():
                raise ValueError("author name and email must not contain '<', '>' or newlines")
        return value


class GitCommitResult(BaseModel):
    path: str
    sha: str
    branch: str | None
    summary: str
