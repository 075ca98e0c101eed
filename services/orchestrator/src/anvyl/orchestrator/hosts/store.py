"""The `hosts` table: the only module that reads and writes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Host, utcnow

_HOSTS = Host.metadata.tables["hosts"]
H = _HOSTS.c


class HostExists(ValueError):
    """A host with that id is known already."""


class HostStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, values: dict[str, Any]) -> Host:
        row = values | {"added_at": utcnow(), "status": "unknown"}
        try:
            await self.db.write(lambda c: c.execute(insert(_HOSTS), row))
        except IntegrityError:
            raise HostExists(values["id"]) from None
        found = await self.get(values["id"])
        assert found is not None
        return found

    async def get(self, host_id: str) -> Host | None:
        query = select(_HOSTS).where(H.id == host_id)

        def read(connection: Connection) -> Host | None:
            row = connection.execute(query).first()
            return Host(**row._mapping) if row is not None else None

        return await self.db.read(read)

    async def all(self) -> list[Host]:
        query = select(_HOSTS).order_by(H.added_at, H.id)
        return await self.db.read(lambda c: [Host(**r._mapping) for r in c.execute(query)])

    async def count(self) -> int:
        return await self.db.read(
            lambda c: int(c.scalar(select(func.count()).select_from(_HOSTS)) or 0)
        )

    async def delete(self, host_id: str) -> bool:
        statement = delete(_HOSTS).where(H.id == host_id)
        result = await self.db.write(lambda c: c.execute(statement))
        return bool(result.rowcount)

    async def record_check(
        self, host_id: str, *, online: bool, latency_ms: float | None, version: str | None,
        error: str | None, at: datetime,
    ) -> None:  # fmt: skip
        """The periodic check's finding; last_seen and version only move when the host answered."""
        values: dict[str, Any] = {"status": "online" if online else "offline", "checked_at": at,
                                  "latency_ms": latency_ms, "last_error": error}  # fmt: skip
        if online:
            values |= {"last_seen": at, "version": version}
        statement = update(_HOSTS).where(H.id == host_id).values(**values)
        await self.db.write(lambda c: c.execute(statement))
