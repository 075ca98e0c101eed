"""The `anvyl` command: one Typer app assembled from a module per command group."""

from __future__ import annotations

import typer

from anvyl.orchestrator.cli.agents import agents_app
from anvyl.orchestrator.cli.clusters import cluster_app
from anvyl.orchestrator.cli.hosts import hosts_app
from anvyl.orchestrator.cli.memory import memory_app
from anvyl.orchestrator.cli.models import models_app
from anvyl.orchestrator.cli.serve import demo, serve
from anvyl.orchestrator.cli.settings import config_app, db_app
from anvyl.orchestrator.cli.tasks import orchestrate, tasks_app
from anvyl.orchestrator.cli.user_settings import settings_app
from anvyl.orchestrator.cli.workspaces import workspaces_app
from anvyl.orchestrator.environment import UnusableEnvironment, load_environment

app = typer.Typer(help="Anvyl: a self-hosted orchestrator for AI agents that work on code repositories.",
                  no_args_is_help=True, add_completion=False)  # fmt: skip
app.command()(serve)
app.command()(orchestrate)
app.command()(demo)
app.add_typer(tasks_app, name="tasks")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(models_app, name="models", help="Model endpoints: list them, test one.")
app.add_typer(agents_app, name="agent")
app.add_typer(settings_app, name="settings")
app.add_typer(hosts_app, name="hosts")
app.add_typer(cluster_app, name="cluster")
app.add_typer(memory_app, name="memory")


def main() -> None:
    try:
        load_environment()  # .env and the deployment guide's names (PROJECT_ID, ...)
    except UnusableEnvironment as exc:
        raise SystemExit(f"anvyl: {exc}") from None
    app()
