"""Request and response models of the worker API, shared by the server and its client.

Every request model forbids unknown fields; every string that reaches the OS is checked for NUL bytes
and for text that cannot be encoded (lone surrogates), so odd input is a clear 4xx, never a 500.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_OUTPUT_BYTES = 1_000_000
MAX_READ_BYTES = 20 * 1024 * 1024
MAX_WRITE_BYTES = 50 * 1024 * 1024
EXEC_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def check_os_string(value: str, what: str = "value") -> str:
    """Refuse strings the OS cannot take: NUL bytes and text that is not encodable as UTF-8."""
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL byte")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not valid Unicode text (lone surrogate?)") from exc
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------- health


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


# ----------------------------------------------------------------------------------------- exec


class ExecRequest(StrictModel):
    """A command to run: either `argv` (no shell) or `command` (run by /bin/sh -c).

    `exec_id` (optional) names the running command so that `POST /exec/{exec_id}/kill` can stop it.
    """

    argv: list[str] | None = Field(default=None, min_length=1)
    command: str | None = Field(default=None, min_length=1, max_length=100_000)
    cwd: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    stdin: str | None = None
    max_output_bytes: int = Field(default=MAX_OUTPUT_BYTES, gt=0, le=10 * MAX_OUTPUT_BYTES)
    exec_id: str | None = Field(default=None, pattern=EXEC_ID_PATTERN)

    @field_validator("argv")
    @classmethod
    def _argv_ok(cls, argv: list[str] | None) -> list[str] | None:
        if argv is not None:
            if not argv[0]:
                raise ValueError("argv[0] must not be empty")
            for item in argv:
                check_os_string(item, "argv")
        return argv

    @field_validator("command", "cwd")
    @classmethod
    def _text_ok(cls, value: str | None) -> str | None:
        return check_os_string(value) if value is not None else None

    @field_validator("stdin")
    @classmethod
    def _stdin_ok(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError("stdin is not valid Unicode text (lone surrogate?)") from exc
        return value

    @field_validator("env")
    @classmethod
    def _env_ok(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not key or "=" in key:
                raise ValueError(f"invalid environment variable name {key[:80]!r}")
            check_os_string(key, "environment variable name")
            check_os_string(value, f"environment variable {key[:80]!r}")
        return env

    @model_validator(mode="after")
    def _one_of_argv_or_command(self) -> ExecRequest:
        if (self.argv is None) == (self.command is None):
            raise ValueError(
                "give exactly one of 'argv' (a list of strings) or 'command' (a string)"
            )
        return self


class ExecResult(BaseModel):
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    truncated: bool = False
    killed: bool = False  # stopped by POST /exec/{exec_id}/kill
    exec_id: str | None = None


class ExecStreamEvent(BaseModel):
    """One NDJSON line of `POST /exec/stream`: output as it comes, then one final result line."""

    stream: Literal["stdout", "stderr", "result"]
    data: str = ""
    result: ExecResult | None = None


class ExecKillResult(BaseModel):
    exec_id: str
    killed: bool


# ---------------------------------------------------------------------------------------- files


class FileReadRequest(StrictModel):
    path: str = Field(min_length=1)
    start_line: int | None = Field(default=None, ge=1, description="first line, 1-based")
    end_line: int | None = Field(default=None, ge=1, description="last line, inclusive")
    max_bytes: int = Field(default=2 * 1024 * 1024, gt=0, le=MAX_READ_BYTES)

    @model_validator(mode="after")
    def _range_ok(self) -> FileReadRequest:
        if self.start_line and self.end_line and self.end_line < self.start_line:
            raise ValueError("end_line must not be before start_line")
        return self


class FileContent(BaseModel):
    path: str  # relative to the workspace
    size: int
    binary: bool
    encoding: Literal["utf-8", "base64"]
    content: str
    truncated: bool = False
    start_line: int | None = None
    end_line: int | None = None  # last line actually returned
    total_lines: int | None = None  # known when the read reached the end of the file


class FileWriteRequest(StrictModel):
    path: str = Field(min_length=1)
    content: str = Field(max_length=MAX_WRITE_BYTES * 2)
    encoding: Literal["utf-8", "base64"] = "utf-8"
    create_parents: bool = True
    overwrite: bool = True
    mode: int | None = Field(default=None, ge=0, le=0o777)


class FileWriteResult(BaseModel):
    path: str
    size: int
    created: bool


class FileListRequest(StrictModel):
    path: str = "."
    glob: str | None = Field(default=None, max_length=1000)
    depth: int = Field(default=1, ge=1, le=64, description="1: direct children only")
    include_git: bool = False
    include_hidden: bool = True
    max_entries: int = Field(default=2000, gt=0, le=50_000)


class FileEntry(BaseModel):
    path: str
    type: Literal["file", "dir", "symlink", "other"]
    size: int | None = None


class FileList(BaseModel):
    path: str
    entries: list[FileEntry]
    truncated: bool = False


class SearchRequest(StrictModel):
    pattern: str = Field(min_length=1, max_length=1000)
    path: str = "."
    glob: str | None = Field(default=None, max_length=1000)
    case_insensitive: bool = False
    max_results: int = Field(default=200, gt=0, le=5000)
    max_file_bytes: int = Field(default=2 * 1024 * 1024, gt=0, le=MAX_READ_BYTES)
    include_git: bool = False
    timeout_s: float = Field(default=30.0, gt=0, le=600)


class SearchMatch(BaseModel):
    path: str
    line: int
    text: str


class SearchResult(BaseModel):
    matches: list[SearchMatch]
    truncated: bool = False
    timed_out: bool = False
    files_scanned: int = 0


class FileDeleteRequest(StrictModel):
    path: str = Field(min_length=1)
    recursive: bool = False
    missing_ok: bool = False


class FileDeleteResult(BaseModel):
    path: str
    deleted: bool


class FileMoveRequest(StrictModel):
    src: str = Field(min_length=1)
    dst: str = Field(min_length=1)
    overwrite: bool = False
    create_parents: bool = True


class FileMoveResult(BaseModel):
    src: str
    dst: str


# ------------------------------------------------------------------------------------------ git


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


class ErrorBody(BaseModel):
    detail: str
