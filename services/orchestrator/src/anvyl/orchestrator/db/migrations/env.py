"""Alembic environment: always driven with a connection handed over by anvyl (see __init__)."""

from alembic import context

from anvyl.orchestrator.db.tables import Base
from anvyl.orchestrator.memory.tables import not_full_text, not_full_text_object

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `anvyl db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    include_name=not_full_text,
    include_object=not_full_text_object,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
