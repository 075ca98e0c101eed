"""The `user_settings` and `user_settings_changes` tables: the only module that reads and writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import UserSettingsChange, UserSettingsRow, utcnow

_SETTINGS = UserSettingsRow.metadata.tables["user_settings"]
_CHANGES = UserSettingsChange.metadata.tables["user_settings_changes"]
S, C = _SETTINGS.c, _CHANGES.c
Values = dict[str, Any]


class UserSettingsStore:
    def __init__(self, db: Database, defaults: Values) -> None:
        self.db = db
        self.defaults = defaults  # the values of a user who never changed anything

    async def get(self, user_id: str) -> UserSettingsRow | None:
        query = select(_SETTINGS).where(S.user_id == user_id)

        def read(connection: Connection) -> UserSettingsRow | None:
            row = connection.execute(query).first()
            return UserSettingsRow(**row._mapping) if row is not None else None

        return await self.db.read(read)

    async def change(
        self, user_id: str, new_values: Callable[[Values], Values], api_key: str
    ) -> UserSettingsRow:
        """One transaction: the row (created with the defaults if missing, locked on PostgreSQL),
        `new_values(current)` written over it, and one change row per field whose value differs."""

        def work(connection: Connection) -> UserSettingsRow:
            now = utcnow()
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            connection.execute(
                dialect.insert(_SETTINGS)
                .values(user_id=user_id, updated_at=now, **self.defaults)
                .on_conflict_do_nothing(index_elements=["user_id"])
            )
            row = connection.execute(
                select(_SETTINGS).where(S.user_id == user_id).with_for_update()
            ).one()
            current = {field: row._mapping[field] for field in self.defaults}
            wanted = current | new_values(current)
            changed = {f: v for f, v in wanted.items() if v != current[f]}
            if changed:
                connection.execute(
                    update(_SETTINGS).where(S.user_id == user_id).values(**changed, updated_at=now)
                )
                connection.execute(insert(_CHANGES), [
                    {"user_id": user_id, "field": field, "old_value": current[field],
                     "new_value": value, "api_key": api_key, "changed_at": now}
                    for field, value in changed.items()
                ])  # fmt: skip
            found = connection.execute(select(_SETTINGS).where(S.user_id == user_id)).one()
            return UserSettingsRow(**found._mapping)

        return await self.db.write(work)

    async def history(self, user_id: str, *, limit: int, offset: int) -> list[UserSettingsChange]:
        query = (
            select(_CHANGES).where(C.user_id == user_id).order_by(C.id.desc())
            .limit(limit).offset(offset)
        )  # fmt: skip
        return await self.db.read(
            lambda c: [UserSettingsChange(**r._mapping) for r in c.execute(query)]
        )
