"""The agent API's bodies: what a client sends to create or change an agent, and what it gets back.

A key is write-only: it comes in as `api_key` and goes out as `api_key_set`, never as itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from anvyl.orchestrator.loop.agent_loop import TaskPolicy

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
MAX_SYSTEM_PROMPT_BYTES = 32 * 1024
MAX_BACKUPS = 5
Provider = Literal["lmstudio", "ollama", "openai", "anthropic", "xai", "groq", "gpt-oss", "mlx"]
AgentStatus = Literal["created", "running", "stopped"]
_HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$"
_URL_PATTERN = r"^https?://[^\s]+$"


def _printable(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _key_text(value: SecretStr | None) -> SecretStr | None:
    """A key goes into an HTTP header: visible ASCII only."""
    if value is not None and not all(33 <= ord(ch) <= 126 for ch in value.get_secret_value()):
        raise ValueError("must be visible ASCII characters (no spaces): check the key")
    return value


class _Checked(BaseModel):
    """A body whose text fields hold no NUL and whose `api_key` is visible ASCII."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _printable(value) if isinstance(value, str) else value

    @field_validator("api_key", check_fields=False)
    @classmethod
    def _key_is_ascii(cls, value: SecretStr | None) -> SecretStr | None:
        return _key_text(value)


class Where(_Checked):
    """Which provider and model, and how to reach it (defaults from the vendor table)."""

    provider: Provider = "lmstudio"
    model: str | None = Field(default=None, min_length=1, max_length=200,
                              description="optional where the vendor has a default model")  # fmt: skip
    provider_host: str | None = Field(default=None, max_length=253, pattern=_HOST_PATTERN,
                                      description="host name or address, no scheme")  # fmt: skip
    provider_port: int | None = Field(default=None, ge=1, le=65535)
    base_url: str | None = Field(default=None, max_length=2048, pattern=_URL_PATTERN,
                                 description="the API's URL; instead of provider_host/port")  # fmt: skip
    api_key: SecretStr | None = Field(default=None, min_length=1, max_length=4096,
                                      description="write-only; stored encrypted")  # fmt: skip


class Backup(Where):
    """A provider tried, in order, when the ones before it fail."""


def _prompt_size(value: str | None) -> str | None:
    if value is not None and len(value.encode()) > MAX_SYSTEM_PROMPT_BYTES:
        raise ValueError(
            f"{len(value.encode())} bytes; at most {MAX_SYSTEM_PROMPT_BYTES} (32 KiB): shorten it"
        )
    return value


class AgentCreate(Where):
    name: str = Field(pattern=NAME_PATTERN, max_length=63,
                      description="lower-case letters, digits and dashes; up to 63")  # fmt: skip
    backups: list[Backup] = Field(default_factory=list, max_length=MAX_BACKUPS)
    system_prompt: str | None = Field(default=None, max_length=MAX_SYSTEM_PROMPT_BYTES,
                                      description="added to Anvyl's system prompt (32 KiB at most)")  # fmt: skip
    policy: TaskPolicy = Field(default_factory=TaskPolicy)
    repo_url: str | None = Field(default=None, min_length=1, max_length=4096,
                                 description="its repository; default: an empty one of its own")  # fmt: skip
    max_steps: int | None = Field(default=None, ge=1, le=500)
    timeout_s: float | None = Field(default=None, gt=0)
    auto_start: bool = False

    @field_validator("system_prompt")
    @classmethod
    def _prompt_fits(cls, value: str | None) -> str | None:
        return _prompt_size(value)


class AgentUpdate(_Checked):
    """Every field optional: the ones sent replace the agent's (`null` clears an optional one)."""

    provider: Provider | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    provider_host: str | None = Field(default=None, max_length=253, pattern=_HOST_PATTERN)
    provider_port: int | None = Field(default=None, ge=1, le=65535)
    base_url: str | None = Field(default=None, max_length=2048, pattern=_URL_PATTERN)
    api_key: SecretStr | None = Field(default=None, min_length=1, max_length=4096)
    backups: list[Backup] | None = Field(default=None, max_length=MAX_BACKUPS)
    system_prompt: str | None = Field(default=None, max_length=MAX_SYSTEM_PROMPT_BYTES)
    policy: TaskPolicy | None = None
    max_steps: int | None = Field(default=None, ge=1, le=500)
    timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("system_prompt")
    @classmethod
    def _prompt_fits(cls, value: str | None) -> str | None:
        return _prompt_size(value)


class BackupOut(BaseModel):
    provider: str
    model: str
    base_url: str | None
    api_key_set: bool


class ProviderHealth(BaseModel):
    ok: bool
    detail: str
    latency_ms: float


class AgentOut(BaseModel):
    name: str
    provider: str
    model: str
    base_url: str | None
    api_key_set: bool
    backups: list[BackupOut]
    system_prompt: str | None
    policy: TaskPolicy
    repo_url: str | None
    max_steps: int | None
    timeout_s: float | None
    workspace_id: str
    status: AgentStatus
    container: str | None
    created_at: datetime
    updated_at: datetime
    provider_health: ProviderHealth | None = None
