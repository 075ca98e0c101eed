"""The settings API's bodies: what a client sends (all of them, or some) and what it gets back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator

from anvyl.orchestrator.user_settings.archives import MAX_ARCHIVE_CHARS, archive_kind

Preference = Literal["local", "online", "auto"]
FIELDS = ("default_model", "default_agent", "preference", "rag_archives", "memory_enabled")
MAX_ARCHIVES = 100


def _archive(entry: str) -> str:
    archive_kind(entry)  # raises ValueError with what to write
    return entry


def _distinct(entries: list[str]) -> list[str]:
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry in seen:
            raise ValueError(f"entry {index} ({entry!r}) is listed twice; list each archive once")
        seen.add(entry)
    return entries


Archive = Annotated[
    str, Field(min_length=1, max_length=MAX_ARCHIVE_CHARS), AfterValidator(_archive)
]
Archives = Annotated[list[Archive], Field(max_length=MAX_ARCHIVES), AfterValidator(_distinct)]
ModelName = Annotated[
    str,
    Field(
        min_length=1, max_length=200, description="a model endpoint's name (`anvyl models list`)"
    ),
]
AgentName = Annotated[str, Field(min_length=1, max_length=63, description="a named agent")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("default_model", "default_agent", check_fields=False)
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class SettingsValues(_Body):
    """Every setting; `PUT /settings` sends these (a field left out goes back to its default)."""

    default_model: ModelName | None = Field(
        default=None, description="the endpoint a task naming no model (and no agent) tries first"
    )
    default_agent: AgentName | None = Field(
        default=None, description="the agent a task naming no agent, model or repository runs as"
    )
    preference: Preference = Field(
        default="auto", description="local: local endpoints first; online: online ones first; "
        "auto: the configured order",
    )  # fmt: skip
    rag_archives: Archives = Field(
        default_factory=list, description="searched by default: directories, .zip, .tar.gz or git "
        "repositories, by absolute path or URL",
    )  # fmt: skip
    # Strict: 0 or "no" is a 422, not a quiet false (the schema says boolean).
    memory_enabled: StrictBool = Field(default=True, description="recall and record memories")


class SettingsPatch(_Body):
    """Some settings (`PATCH /settings`): a field left out stays; null puts it back to its default."""

    default_model: ModelName | None = None
    default_agent: AgentName | None = None
    preference: Preference | None = None
    rag_archives: Archives | None = None
    memory_enabled: StrictBool | None = None

    def changes(self) -> dict[str, Any]:
        """The fields sent, with null replaced by the field's default."""
        defaults = SettingsValues().model_dump()
        sent = self.model_dump(include=self.model_fields_set)
        return {k: defaults[k] if v is None else v for k, v in sent.items()}


class UserSettings(SettingsValues):
    """A user's settings as they are now (defaults where never set)."""

    user_id: str
    updated_at: datetime | None = Field(description="last change; null while never changed")


class SettingsChange(BaseModel):
    """One changed field."""

    id: int
    field: str
    old_value: Any = None
    new_value: Any = None
    api_key: str = Field(description="the fingerprint of the API key that made the change "
                         "(`sha256:` and 12 hex digits), or `auth-off`")  # fmt: skip
    changed_at: datetime
