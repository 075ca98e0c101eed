"""User settings: a user's default model and agent, local or online preference, RAG archives and
memory switch (the `user_settings` tables), and what they mean for each new task.

Other packages read them through `UserSettingsReader` (the memory part: `rag_archives`,
`memory_enabled`), which `UserSettingsService` implements.
"""

from __future__ import annotations

from typing import Protocol

from anvyl.orchestrator.user_settings.archives import ArchiveKind, archive_kind
from anvyl.orchestrator.user_settings.models import Preference, UserSettings


class UserSettingsReader(Protocol):
    async def current(self) -> UserSettings:
        """The default user's settings as they are now (defaults where never set)."""
        ...


__all__ = ["ArchiveKind", "Preference", "UserSettings", "UserSettingsReader", "archive_kind"]
