"""`anvyl serve`, `anvyl demo`: run the orchestrator."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from anvyl.orchestrator.cli.common import console, fail, load_settings


def serve(
    host: Annotated[
        str | None, typer.Option(help="bind address (default ANVYL_HOST or 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default ANVYL_PORT or 8080)")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="processes sharing the port and the task queue "
            "(PostgreSQL only; each runs ANVYL_MAX_CONCURRENT_TASKS task slots)",
        ),
    ] = 1,
) -> None:
    """Run the orchestrator's HTTP API and its task slots."""
    import uvicorn
    from sqlalchemy.engine import make_url

    from anvyl.orchestrator.api.app import create_app
    from anvyl.orchestrator.api.local_clients import NotLocal, local_peers

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    try:
        local_peers(settings)  # without keys: this machine only, or no start
    except NotLocal as refused:
        fail(str(refused), 2)
    postgres = make_url(settings.effective_database_url).get_backend_name() == "postgresql"
    if settings.max_concurrent_tasks == 0 and not postgres:
        fail("ANVYL_MAX_CONCURRENT_TASKS=0 (an API-only process) needs PostgreSQL, where other "
             "`anvyl serve` processes run the tasks: with SQLite this process is the only one", 2)  # fmt: skip
    options: dict[str, Any] = {"host": settings.host, "port": settings.port,
                               "log_level": "warning", "access_log": False}  # fmt: skip
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    if not postgres:
        fail("--workers needs PostgreSQL (ANVYL_DATABASE_URL=postgresql+asyncpg://...): SQLite is "
             "the single-process embedded mode", 2)  # fmt: skip
    # The worker processes build their app from the environment: pass the command line on.
    os.environ.update(ANVYL_HOST=settings.host, ANVYL_PORT=str(settings.port))
    uvicorn.run("anvyl.orchestrator.api.app:app_from_environment", factory=True, workers=workers,
                **options)  # fmt: skip


def demo(
    port: Annotated[int, typer.Option(help="port for the demo orchestrator")] = 8080,
    query: Annotated[str, typer.Option(help="the task to run")] = "List files in current directory",
) -> None:
    """Start the orchestrator with embedded defaults and run one real task on a sample repository."""
    from anvyl.orchestrator.cli.demo import run_demo

    raise typer.Exit(run_demo(port=port, query=query, console=console))
