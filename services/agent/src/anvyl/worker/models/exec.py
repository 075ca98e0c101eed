"""`POST /exec`, `POST /exec/stream` and `POST /exec/{exec_id}/kill`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from anvyl.worker.models.common import (
    EXEC_ID_PATTERN,
    MAX_OUTPUT_BYTES,
    StrictModel,
    check_os_string,
)


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
