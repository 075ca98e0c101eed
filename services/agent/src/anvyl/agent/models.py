"""Request and response models of the worker API, shared by the server and its client."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_OUTPUT_BYTES = 1_000_000


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    status: str = "ok"
    version: str
    workspace: str


class ExecRequest(StrictModel):
    """A command to run: either `argv` (no shell) or `command` (run by /bin/sh -c)."""

    argv: list[str] | None = Field(default=None, min_length=1)
    command: str | None = Field(default=None, min_length=1, max_length=100_000)
    cwd: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    stdin: str | None = None
    max_output_bytes: int = Field(default=MAX_OUTPUT_BYTES, gt=0, le=10 * MAX_OUTPUT_BYTES)

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


class GitCloneRequest(StrictModel):
    url: str = Field(min_length=1, max_length=4096)
    ref: str | None = Field(default=None, max_length=255)
    depth: int | None = Field(default=None, gt=0)
    dest: str = "."


class GitCloneResult(BaseModel):
    action: str  # "cloned" or "fetched"
    path: str
    head: str


class ErrorBody(BaseModel):
    detail: str
