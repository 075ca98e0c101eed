"""The user's settings: read (cached briefly), changed with every change recorded, and what they
mean for a new task (its default agent or model, its preference)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import UserSettingsRow
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.user_settings.models import (
    FIELDS,
    Preference,
    SettingsChange,
    SettingsPatch,
    SettingsValues,
    UserSettings,
)
from anvyl.orchestrator.user_settings.store import UserSettingsStore

log = get_logger(__name__)
DEFAULT_USER = "default"  # the only user today
# Another process's change is seen within this time (this process's own at once); a task's enqueue
# then reads no row.
CACHE_S = 1.0


class SettingsProblem(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class TaskDefaults:
    """What the settings add to a new task: recorded with it, reported in its metadata."""

    preference: Preference
    memory_enabled: bool
    agent: str | None = None  # the default agent, when the task runs as it
    model: str | None = None  # the default model, when the task tries it first

    def as_request(self) -> dict[str, Any]:
        return {"preference": self.preference, "default_agent": self.agent,
                "default_model": self.model, "memory_enabled": self.memory_enabled}  # fmt: skip


class UserSettingsService:
    def __init__(
        self,
        db: Database,
        model_names: Callable[[], list[str]],
        agent_names: Callable[[], Awaitable[list[str]]],
        on_change: Callable[[UserSettings], None] | None = None,
    ) -> None:
        self.store = UserSettingsStore(db, SettingsValues().model_dump())
        self.model_names = model_names  # the router's endpoints
        self.agent_names = agent_names
        self.on_change = on_change  # e.g. the archive indexer follows `rag_archives`
        self._cached: tuple[float, UserSettings] | None = None

    # Reading (UserSettingsReader) -----------------------------------------------------------------

    async def current(self, user_id: str = DEFAULT_USER) -> UserSettings:
        if (
            user_id == DEFAULT_USER
            and self._cached
            and time.monotonic() - self._cached[0] < CACHE_S
        ):
            return self._cached[1]
        found = self._out(user_id, await self.store.get(user_id))
        if user_id == DEFAULT_USER:
            self._cached = (time.monotonic(), found)
        return found

    def _out(self, user_id: str, row: UserSettingsRow | None) -> UserSettings:
        if row is None:
            return UserSettings(user_id=user_id, updated_at=None)
        values = {field: getattr(row, field) for field in FIELDS}
        # model_construct: the stored values were validated on their way in (a later rule must
        # not make a stored row unreadable).
        return UserSettings.model_construct(user_id=user_id, updated_at=row.updated_at, **values)

    # Changing --------------------------------------------------------------------------------------

    async def replace(self, body: SettingsValues, api_key: str) -> UserSettings:
        wanted = body.model_dump()
        await self._check_names(wanted)
        return await self._write(lambda _current: wanted, api_key)

    async def patch(self, body: SettingsPatch, api_key: str) -> UserSettings:
        wanted = body.changes()
        await self._check_names(wanted)
        return await self._write(lambda _current: wanted, api_key)

    async def reset(self, api_key: str) -> UserSettings:
        defaults = SettingsValues().model_dump()
        return await self._write(lambda _current: defaults, api_key)

    async def history(self, *, limit: int, offset: int) -> list[SettingsChange]:
        rows = await self.store.history(DEFAULT_USER, limit=limit, offset=offset)
        return [SettingsChange(id=r.id, field=r.field, old_value=r.old_value, new_value=r.new_value,
                               api_key=r.api_key, changed_at=r.changed_at) for r in rows]  # fmt: skip

    async def _write(self, new_values: Callable[[dict[str, Any]], dict[str, Any]],
                     api_key: str) -> UserSettings:  # fmt: skip
        row = await self.store.change(DEFAULT_USER, new_values, api_key)
        found = self._out(DEFAULT_USER, row)
        self._cached = (time.monotonic(), found)
        log.info("settings.changed", user_id=DEFAULT_USER, api_key=api_key)
        if self.on_change is not None:
            self.on_change(found)
        return found

    async def _check_names(self, wanted: dict[str, Any]) -> None:
        """A default model or agent must exist now (a later removal is handled at each task)."""
        model = wanted.get("default_model")
        if model is not None and model not in (known := self.model_names()):
            listed = ", ".join(known) or "none (no model endpoint is configured)"
            raise SettingsProblem(422, f"default_model: no model endpoint named {model!r}; "
                                  f"known: {listed}")  # fmt: skip
        agent = wanted.get("default_agent")
        if agent is not None and agent not in (agents := await self.agent_names()):
            listed = ", ".join(agents) or "none (create one with POST /agents)"
            raise SettingsProblem(422, f"default_agent: no agent named {agent!r}; known: {listed}")

    # What a new task gets ----------------------------------------------------------------------------

    async def for_task(self, *, agent: str | None, model: str | None,
                       has_repo: bool) -> TaskDefaults:  # fmt: skip
        """The defaults a task naming no agent and no model gets: the default agent when it names
        no repository either (an agent works in its own workspace), else the default model. A
        default that no longer exists is skipped (and logged), not an error of the task."""
        found = await self.current()
        plain = TaskDefaults(found.preference, found.memory_enabled)
        if agent is not None or model is not None:
            return plain
        if found.default_agent is not None and not has_repo:
            if found.default_agent in await self.agent_names():
                return dataclasses.replace(plain, agent=found.default_agent)
            log.warning("settings.default_agent_missing", agent=found.default_agent)
        if found.default_model is not None:
            if found.default_model in self.model_names():
                return dataclasses.replace(plain, model=found.default_model)
            log.warning("settings.default_model_missing", model=found.default_model)
        return plain
