"""The `anvyl` command line: run the server, send tasks, inspect them, show settings."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Annotated, Any, NoReturn

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from anvyl.orchestrator.settings import Settings

app = typer.Typer(help="Anvyl: a self-hosted orchestrator for AI agents that work on code repositories.",
                  no_args_is_help=True, add_completion=False)  # fmt: skip
tasks_app = typer.Typer(help="Inspect tasks.", no_args_is_help=True)
config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")

console = Console()
errors = Console(stderr=True)
ServerOption = Annotated[str, typer.Option("--server", envvar="ANVYL_URL", help="orchestrator URL")]
DEFAULT_SERVER = "http://127.0.0.1:8080"


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except (ValidationError, ValueError) as exc:
        fail(f"invalid settings: {exc}", 2)


def request(method: str, server: str, path: str, *, json_body: Any = None,
            timeout: float = 30.0) -> dict[str, Any]:  # fmt: skip
    try:
        response = httpx.request(method, f"{server.rstrip('/')}{path}", json=json_body,
                                 timeout=httpx.Timeout(timeout, connect=5.0), trust_env=False)  # fmt: skip
    except httpx.ConnectError:
        fail(f"cannot reach the orchestrator at {server}: is `anvyl serve` running?")
    except httpx.TimeoutException:
        fail(f"the orchestrator at {server} did not answer within {timeout:.0f}s")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        fail(f"{response.status_code}: {detail}")
    body: dict[str, Any] = response.json()
    return body


def print_task(task: dict[str, Any], as_json: bool = False) -> None:
    if as_json:
        console.print_json(json.dumps(task))
        return
    colour = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(
        task["status"], "cyan"
    )
    console.print(f"[bold]task[/] {task['task_id']}  [{colour}]{task['status']}[/]")
    if task.get("result"):
        console.print(task["result"], markup=False, highlight=False)
    if task.get("error"):
        console.print(f"[red]{task['error']}[/]", markup=True, highlight=False)
    meta = task.get("metadata") or {}
    if meta:
        calls = escape(", ".join(c["name"] for c in meta.get("tool_calls", [])))
        console.print(
            f"[dim]backend={meta.get('backend')} model={meta.get('model')} "
            f"latency={meta.get('latency_s')}s tools=[{calls}] workspace={task.get('workspace_id')}[/]"
        )


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="bind address (default ANVYL_HOST or 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default ANVYL_PORT or 8080)")] = None,
) -> None:
    """Run the orchestrator's HTTP API."""
    import uvicorn

    from anvyl.orchestrator.api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="warning", access_log=False)  # fmt: skip


@app.command()
def orchestrate(
    query: Annotated[str, typer.Argument(help="what the agent should do")],
    repo: Annotated[str, typer.Option("--repo", help="local git repository path or git URL")],
    server: ServerOption = DEFAULT_SERVER,
    as_json: Annotated[bool, typer.Option("--json", help="print the task as JSON")] = False,
) -> None:
    """Send a task and wait for its result."""
    if os.path.isdir(repo):
        repo = os.path.abspath(repo)
    with console.status(f"running task on {repo} ...", spinner="dots"):
        task = request("POST", server, "/orchestrate",
                       json_body={"query": query, "repo_url": repo}, timeout=3600)  # fmt: skip
    print_task(task, as_json)
    if task["status"] != "succeeded":
        raise typer.Exit(1)


@tasks_app.command("show")
def tasks_show(
    task_id: str,
    server: ServerOption = DEFAULT_SERVER,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one task."""
    print_task(request("GET", server, f"/tasks/{task_id}"), as_json)


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


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="port for the demo orchestrator")] = 8080,
    query: Annotated[str, typer.Option(help="the task to run")] = "List files in current directory",
) -> None:
    """Start the orchestrator with embedded defaults and run one real task on a sample repository."""
    from anvyl.orchestrator.demo import run_demo

    raise typer.Exit(run_demo(port=port, query=query, console=console))


def main() -> None:
    app()
