"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.db.migrations import alembic_config, is_current
from anvyl.orchestrator.db.tables import Base, utcnow
from anvyl.orchestrator.memory.tables import not_full_text, not_full_text_object
from anvyl.orchestrator.tasks.store import TaskStore


async def test_migrations_match_the_models_and_are_current(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.upgrade()
        async with db.engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            "include_name": not_full_text,
                            "include_object": not_full_text_object,
                        },
                    ),
                    Base.metadata,
                )
            )
            current = await connection.run_sync(is_current)
    finally:
        await db.close()
    assert differences == []
    assert current is True


async def test_the_upgrade_to_per_row_event_numbers_keeps_each_tasks_numbering(
    database_url: str,
) -> None:
    """0005 moves "the last event's seq" onto the task row: existing tasks go on from their last
    event, no event is lost either way, and a workspace left "busy" by the old bookkeeping becomes idle (busy is now read from
    the tasks)."""
    db = Database(database_url)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0004"))
            await connection.execute(text(
                "INSERT INTO tasks (id, status, query, request, metadata, attempts, created_at) "
                "VALUES ('t-old', 'succeeded', 'q', '{}', '{}', 1, CURRENT_TIMESTAMP), "
                "('t-new', 'queued', 'q', '{}', '{}', 0, CURRENT_TIMESTAMP)"
            ))  # fmt: skip
            await connection.execute(text(
                "INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES "
                + ", ".join(f"('t-old', {n}, 'status', '{{}}', CURRENT_TIMESTAMP)" for n in (1, 2, 3))
            ))  # fmt: skip
            await connection.execute(text(
                "INSERT INTO workspaces (id, repo_url, backend, status, created_at, last_used_at) "
                "VALUES ('w', 'https://example.invalid/r.git', 'local', 'busy', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            ))  # fmt: skip
        await db.upgrade()
        store = TaskStore(db)
        numbers = {task_id: await store.last_seq(task_id) for task_id in ("t-old", "t-new")}
        appended = await store.add_events("t-old", [("note", {}, utcnow())])
        async with db.engine.begin() as connection:
            workspace_status = await connection.scalar(text("SELECT status FROM workspaces"))
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0004"))
            events_after_downgrade = await connection.scalar(
                text("SELECT count(*) FROM task_events")
            )
    finally:
        await db.close()
    assert numbers == {"t-old": 3, "t-new": 0}
    assert appended == 4
    assert workspace_status == "idle"
    # On SQLite a batch migration (copy the table, drop the old one) would have taken the events
    # with it (ON DELETE CASCADE): both directions alter the table in place.
    assert events_after_downgrade == 4


async def test_the_agents_table_comes_with_0006_and_goes_with_its_downgrade(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        await db.upgrade()
        async with db.engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO agents (name, provider, model, backups, policy, workspace_id, status, "
                "created_at, updated_at) VALUES ('a', 'lmstudio', 'default', '[]', '{}', 'agent-a', "
                "'created', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ))  # fmt: skip
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0005"))
            tables_down = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            agents_again = await connection.scalar(text("SELECT count(*) FROM agents"))
    finally:
        await db.close()
    assert "agents" not in tables_down and "tasks" in tables_down
    assert agents_again == 0


async def test_the_hosts_table_comes_with_0007_and_goes_with_its_downgrade(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        await db.upgrade()
        async with db.engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO hosts (id, name, url, tags, added_at) VALUES "
                "('b', 'b', 'http://10.0.0.2:8080', '[]', CURRENT_TIMESTAMP)"
            ))  # fmt: skip
            defaults = (await connection.execute(text("SELECT kind, status FROM hosts"))).one()
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0006"))
            tables_down = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            hosts_again = await connection.scalar(text("SELECT count(*) FROM hosts"))
    finally:
        await db.close()
    assert tuple(defaults) == ("anvyl", "unknown")
    assert "hosts" not in tables_down and "agents" in tables_down
    assert hosts_again == 0


async def test_the_memory_tables_come_with_0009_and_go_with_its_downgrade(
    database_url: str,
) -> None:
    """Its full-text objects too (SQLite's FTS5 table and triggers, PostgreSQL's generated column):
    a memory written after the round trip is found again."""
    db = Database(database_url)
    insert = text("INSERT INTO memories (kind, text, source, created_at) "
                  "VALUES ('task', 'the billing websocket reconnects', 'task t1', CURRENT_TIMESTAMP)")  # fmt: skip
    try:
        await db.upgrade()
        async with db.engine.begin() as connection:
            await connection.execute(insert)
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0008"))
            tables_down = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            memories_again = await connection.scalar(text("SELECT count(*) FROM memories"))
            await connection.execute(insert)
    finally:
        await db.close()
    assert not {"memories", "memories_fts", "memory_archives", "memory_archive_files"} & set(
        tables_down
    )
    assert "user_settings" in tables_down
    assert memories_again == 0
    # The full-text index works after the round trip: the backend finds the new memory.
    from anvyl.orchestrator.memory.store import DatabaseMemory

    db = Database(database_url)
    try:
        hits = await DatabaseMemory(db).search("billing websocket", scope="all")
    finally:
        await db.close()
    assert [h.text for h in hits] == ["the billing websocket reconnects"]
