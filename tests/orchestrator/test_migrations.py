"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.migrations import is_current
from anvyl.orchestrator.db.tables import Base


async def test_migrations_match_the_models_and_are_current(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.upgrade()
        async with db.engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
            current = await connection.run_sync(is_current)
    finally:
        await db.close()
    assert differences == []
    assert current is True
