"""The `agents` table: the only module that reads and writes it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.tables import Agent, utcnow

_AGENTS = Agent.metadata.tables["agents"]
A = _AGENTS.c


class AgentExists(ValueError):
    """An agent of that name exists already."""


class AgentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, values: dict[str, Any]) -> Agent:
        now = utcnow()
        row = values | {"created_at": now, "updated_at": now}
        try:
            await self.db.write(lambda c: c.execute(insert(_AGENTS), row))
        except IntegrityError:
            raise AgentExists(values["name"]) from None
        found = await self.get(values["name"])
        assert found is not None
        return found

    async def get(self, name: str) -> Agent | None:
        query = select(_AGENTS).where(A.name == name)

        def read(connection: Connection) -> Agent | None:
            row = connection.execute(query).first()
            return Agent(**row._mapping) if row is not None else None

        return await self.db.read(read)

    async def all(self) -> list[Agent]:
        query = select(_AGENTS).order_by(A.name)
        return await self.db.read(lambda c: [Agent(**r._mapping) for r in c.execute(query)])

    async def names(self) -> list[str]:
        query = select(A.name).order_by(A.name)
        return await self.db.read(lambda c: list(c.scalars(query)))

    async def update(self, name: str, values: dict[str, Any]) -> Agent | None:
        statement = update(_AGENTS).where(A.name == name).values(**values, updated_at=utcnow())
        await self.db.write(lambda c: c.execute(statement))
        return await self.get(name)

    async def set_status(self, name: str, status: str) -> None:
        """created, running or stopped; not a change of the profile (updated_at stays)."""
        statement = update(_AGENTS).where(A.name == name).values(status=status)
        await self.db.write(lambda c: c.execute(statement))

    async def delete(self, name: str) -> None:
        await self.db.write(lambda c: c.execute(delete(_AGENTS).where(A.name == name)))
