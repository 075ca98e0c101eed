"""The host API's bodies: a known host as sent and as shown, the queries, and the answers.

A host's token is write-only: it comes in as `token` and goes out as `token_set`, never as itself.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, field_validator

from anvyl.orchestrator.db.tables import Host
from anvyl.orchestrator.loop.agent_loop import TaskPolicy

HOST_ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,49}$"
MAX_QUERY_CHARS = 20_000
MAX_TIMEOUT_S = 3600.0
HostKind = Literal["anvyl", "a2a"]
# A remote task's own states, or what kept the host from answering.
AnswerStatus = Literal[
    "succeeded", "failed", "cancelled", "unreachable", "timeout", "refused", "error"
]


class _Checked(BaseModel):
    """No NUL in any text field (PostgreSQL refuses them: a 422 here, not a 500 there)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class HostCreate(_Checked):
    host_id: str | None = Field(default=None, pattern=HOST_ID_PATTERN,
                                description="lower-case letters, digits, dashes; default: from the name")  # fmt: skip
    name: str = Field(min_length=1, max_length=100, description="what to call it")
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s/?#]+[^\s]*$",
                     description="its orchestrator's base URL (kind anvyl) or its A2A endpoint (kind a2a)")  # fmt: skip
    token: SecretStr | None = Field(default=None, max_length=4096,
                                    description="its bearer key (one of its ANVYL_API_KEYS); stored encrypted, never shown")  # fmt: skip
    kind: HostKind = "anvyl"
    tags: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not re.fullmatch(_TAG_PATTERN, tag):
                raise ValueError(f"tag {tag!r}: letters, digits and _.:- only, at most 50")
        return sorted(set(tags))

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not all(33 <= ord(ch) <= 126 for ch in value):
            raise ValueError(
                "must be visible ASCII characters (no spaces): e.g. http://10.0.0.2:8080"
            )
        try:
            parsed = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL ({exc}): e.g. http://10.0.0.2:8080") from None
        if not parsed.host:
            raise ValueError("names no host: e.g. http://10.0.0.2:8080")
        if parsed.userinfo:
            raise ValueError("holds credentials: give the host's key as `token` (stored encrypted)")
        return value

    @field_validator("name")
    @classmethod
    def _stripped(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name is blank: say what to call the host")
        return value.strip()

    @field_validator("token")
    @classmethod
    def _token_ascii(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not all(33 <= ord(ch) <= 126 for ch in value.get_secret_value()):
            raise ValueError("must be visible ASCII characters (no spaces): check the token")
        return value


class HostOut(BaseModel):
    host_id: str
    name: str
    url: str
    kind: HostKind
    tags: list[str]
    token_set: bool
    added_at: datetime
    status: Literal["unknown", "online", "offline"]
    last_seen: datetime | None
    checked_at: datetime | None
    latency_ms: float | None
    version: str | None
    last_error: str | None

    @classmethod
    def from_row(cls, host: Host) -> HostOut:
        return cls(
            host_id=host.id, name=host.name, url=host.url, kind=host.kind,
            tags=list(host.tags or []), token_set=host.token_encrypted is not None,
            added_at=host.added_at, status=host.status,
            last_seen=host.last_seen, checked_at=host.checked_at, latency_ms=host.latency_ms,
            version=host.version, last_error=host.last_error,
        )  # fmt: skip


class _Query(_Checked):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="what to ask")
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S,
                                    description="seconds to wait for each host; default 30")  # fmt: skip

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is empty: say what to ask")
        return value.strip()


class ProcessRequest(_Query):
    """POST /agent/process: a query answered here, as POST /orchestrate answers it in sync mode."""

    repo_url: str | None = Field(default=None, min_length=1, max_length=4096)
    agent: str | None = Field(default=None, max_length=100, description="run as this named agent")
    model: str | None = Field(default=None, max_length=200)
    policy: TaskPolicy | None = None


class RemoteQueryRequest(_Query):
    host_id: str = Field(min_length=1, max_length=63, description="a known host (GET /agent/hosts)")


class BroadcastRequest(_Query):
    include_self: StrictBool = Field(default=False, description="this host answers too")
    tags: list[str] = Field(default_factory=list, max_length=20,
                            description="only the hosts with every one of these tags")  # fmt: skip


class HostAnswer(BaseModel):
    """One host's answer to a remote query or a broadcast."""

    host_id: str
    name: str
    status: AnswerStatus
    result: str | None = None
    error: str | None = None
    latency_s: float
    task_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Load(BaseModel):
    cpu_count: int
    load_avg: list[float]
    task_slots: int
    tasks_running: int
    tasks_queued: int


class AgentInfo(BaseModel):
    """GET /agent/info: this host as others see it."""

    host_id: str
    name: str
    version: str
    agents: list[str]
    models: list[str]
    hub_servers: list[str]
    tools: int
    known_hosts: int
    load: Load
