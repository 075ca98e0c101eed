"""`anvyl config show` and `anvyl db upgrade`: the process's settings and its database."""

from __future__ import annotations

import asyncio
import json

import typer

from anvyl.orchestrator.cli.common import console, load_settings

config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings, secrets masked."""
    console.print_json(json.dumps(load_settings().masked()))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    from anvyl.orchestrator.db.engine import Database

    settings = load_settings()

    async def upgrade() -> None:
        db = Database(settings.effective_database_url)
        try:
            await db.upgrade()
        finally:
            await db.close()

    asyncio.run(upgrade())
    console.print("database is at the newest migration")
