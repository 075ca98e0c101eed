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
from rich.table import Table

from anvyl.orchestrator.cli.models import models_app
from anvyl.orchestrator.settings import Settings, is_loopback

app = typer.Typer(help="Anvyl: a self-hosted orchestrator for AI agents that work on code repositories.",
                  no_args_is_help=True, add_completion=False)  # fmt: skip
tasks_app = typer.Typer(help="Inspect tasks.", no_args_is_help=True)
config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
workspaces_app = typer.Typer(help="Inspect and remove workspaces.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(models_app, name="models", help="Model endpoints: list them, test one.")

console = Console()
errors = Console(stderr=True)
ServerOption = Annotated[str, typer.Option("--server", envvar="ANVYL_URL", help="orchestrator URL")]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="ANVYL_API_KEY", help="API key (bearer)", show_default=False),
]
DEFAULT_SERVER = "http://127.0.0.1:8080"


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except (ValidationError, ValueError) as exc:
        fail(f"invalid settings: {exc}", 2)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _check(response: httpx.Response, server: str) -> None:
    if response.status_code == 401:
        fail(f"the orchestrator at {server} refused the API key: set ANVYL_API_KEY (or --api-key) "
             "to one of the server's ANVYL_API_KEYS")  # fmt: skip
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        fail(f"{response.status_code}: {detail}")


def request(method: str, server: str, path: str, *, json_body: Any = None, timeout: float = 30.0,
            api_key: str | None = None, params: dict[str, Any] | None = None) -> Any:  # fmt: skip
    try:
        response = httpx.request(method, f"{server.rstrip('/')}{path}", json=json_body, params=params,
                                 headers=_headers(api_key), timeout=httpx.Timeout(timeout, connect=5.0),
                                 trust_env=False)  # fmt: skip
    except httpx.ConnectError:
        fail(f"cannot reach the orchestrator at {server}: is `anvyl serve` running?")
    except httpx.TimeoutException:
        fail(f"the orchestrator at {server} did not answer within {timeout:.0f}s")
    _check(response, server)
    return response.json()


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
            f"latency={meta.get('latency_s')}s tools=\\[{calls}] workspace={task.get('workspace_id')}[/]"
        )


@app.command()
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
            "(PostgreSQL only; each runs ANVYL_MAX_CONCURRENT_TASKS runners)",
        ),
    ] = 1,
) -> None:
    """Run the orchestrator's HTTP API and its task runners."""
    import uvicorn
    from sqlalchemy.engine import make_url

    from anvyl.orchestrator.api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    if not settings.api_keys and not is_loopback(settings.host):
        fail(f"refusing to listen on {settings.host} without API keys: set ANVYL_API_KEYS "
             "(comma-separated) or bind 127.0.0.1", 2)  # fmt: skip
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


@app.command()
def orchestrate(
    query: Annotated[str, typer.Argument(help="what the agent should do")],
    repo: Annotated[
        str | None, typer.Option("--repo", help="local git repository path or git URL")
    ] = None,
    background: Annotated[
        bool, typer.Option("--background", help="queue it and print its id")
    ] = False,
    follow: Annotated[bool, typer.Option("--follow", help="show each step live")] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="task time limit, seconds")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the task as JSON")] = False,
) -> None:
    """Send a task; wait for its result (default), follow it live, or just queue it."""
    if repo is not None and os.path.isdir(repo):
        repo = os.path.abspath(repo)
    body: dict[str, Any] = {
        "query": query,
        "mode": "background" if background or follow else "sync",
    }
    if repo is not None:
        body["repo_url"] = repo
    if timeout is not None:
        body["timeout_s"] = timeout
    if background or follow:
        accepted = request("POST", server, "/orchestrate", json_body=body, api_key=api_key)
        if not follow:
            console.print(accepted["task_id"]) if not as_json else console.print_json(
                json.dumps(accepted)
            )
            return
        follow_events(server, accepted["task_id"], api_key)
        task = request("GET", server, f"/tasks/{accepted['task_id']}", api_key=api_key)
    else:
        with console.status(f"running task on {repo or 'no repository'} ...", spinner="dots"):
            task = request(
                "POST", server, "/orchestrate", json_body=body, timeout=3600, api_key=api_key
            )
    print_task(task, as_json)
    if task["status"] != "succeeded":
        raise typer.Exit(1)


def describe_event(event: dict[str, Any]) -> str:
    data = event["data"]
    kind = event["type"]
    if kind == "status":
        extra = f" ({data['reason']})" if data.get("reason") else ""
        return f"status: {data['status']}{extra}"
    if kind == "status" and data.get("pending"):
        pending = data["pending"]
        return (f"waiting for approval: {pending['tool']}({json.dumps(pending['arguments'])}) "
                f"[{pending['reason']}] -> anvyl tasks approve|reject TASK_ID")  # fmt: skip
    if kind == "model.call":
        calls = ", ".join(c["name"] for c in data.get("tool_calls", [])) or "final answer"
        return f"model {data['endpoint']} ({data['model']}) in {data['latency_s']:.2f}s -> {calls}"
    if kind == "tool.call":
        return f"tool {data['name']}({json.dumps(data.get('arguments', {}))})"
    if kind == "tool.result":
        outcome = "ok" if data.get("ok") else f"failed: {data.get('error')}"
        return f"  -> {data['name']} {outcome} in {data.get('duration_s', 0):.3f}s"
    if kind == "result":
        return f"finished: {data['status']}"
    return f"{kind}: {json.dumps(data)[:200]}"


def follow_events(server: str, task_id: str, api_key: str | None) -> None:
    """Print the task's events as they happen (SSE), with a spinner while a step runs."""
    url = f"{server.rstrip('/')}/tasks/{task_id}/events"
    last_seq = 0
    for _ in range(5):  # reconnect a few times if the stream drops, without repeating events
        headers = _headers(api_key) | ({"Last-Event-ID": str(last_seq)} if last_seq else {})
        try:
            with (
                console.status("waiting for the next step ...", spinner="dots") as spinner,
                httpx.stream(
                    "GET",
                    url,
                    headers=headers,
                    timeout=httpx.Timeout(None, connect=5.0),
                    trust_env=False,
                ) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    _check(response, server)
                data_line = ""
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        data_line = line[5:].strip()
                    elif line == "" and data_line:
                        event = json.loads(data_line)
                        data_line = ""
                        last_seq = event["seq"]
                        console.print(f"[dim]#{event['seq']}[/] {escape(describe_event(event))}")
                        spinner.update(f"step {event['seq']} done; working ...")
                        if event["type"] == "result":
                            return
        except httpx.ConnectError:
            fail(f"cannot reach the orchestrator at {server}: is `anvyl serve` running?")
        except httpx.TransportError:
            continue
    fail("the event stream kept dropping; see `anvyl tasks events " + task_id + "`")


@tasks_app.command("show")
def tasks_show(
    task_id: str,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one task."""
    print_task(request("GET", server, f"/tasks/{task_id}", api_key=api_key), as_json)


@tasks_app.command("list")
def tasks_list(
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed, ...")
    ] = None,
    workspace: Annotated[str | None, typer.Option(help="workspace id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List tasks, newest first."""
    params = {
        k: v for k, v in {"status": status, "workspace_id": workspace, "limit": limit}.items() if v
    }
    page = request("GET", server, "/tasks", params=params, api_key=api_key)
    if as_json:
        console.print_json(json.dumps(page))
        return
    table = Table("task", "status", "workspace", "created", "query")
    for task in page["tasks"]:
        table.add_row(task["task_id"], task["status"], task["workspace_id"] or "-",
                      task["created_at"][:19], task["query"][:60])  # fmt: skip
    console.print(table)


@tasks_app.command("events")
def tasks_events(
    task_id: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep following until it ends")
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a task's events (steps)."""
    if follow:
        follow_events(server, task_id, api_key)
        return
    for event in request("GET", server, f"/tasks/{task_id}/events", params={"format": "json"},
                         api_key=api_key):  # fmt: skip
        console.print(f"[dim]#{event['seq']}[/] {escape(describe_event(event))}")


def _decide(task_id: str, verdict: str, call_id: str | None, note: str | None, server: str,
            api_key: str | None) -> None:  # fmt: skip
    body = {k: v for k, v in {"call_id": call_id, "note": note}.items() if v}
    task = request("POST", server, f"/tasks/{task_id}/{verdict}", json_body=body, api_key=api_key)
    console.print(f"task {task_id}: {verdict}d; now {task['status']}")


CallIdOption = Annotated[str | None, typer.Option("--call-id", help="the pending call (checked)")]
NoteOption = Annotated[str | None, typer.Option("--note", help="a note the model will see")]


@tasks_app.command("approve")
def tasks_approve(task_id: str, call_id: CallIdOption = None, note: NoteOption = None,
                  server: ServerOption = DEFAULT_SERVER, api_key: ApiKeyOption = None) -> None:  # fmt: skip
    """Let the tool call a task is waiting for run."""
    _decide(task_id, "approve", call_id, note, server, api_key)


@tasks_app.command("reject")
def tasks_reject(task_id: str, call_id: CallIdOption = None, note: NoteOption = None,
                 server: ServerOption = DEFAULT_SERVER, api_key: ApiKeyOption = None) -> None:  # fmt: skip
    """Refuse the tool call a task is waiting for."""
    _decide(task_id, "reject", call_id, note, server, api_key)


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: str, server: ServerOption = DEFAULT_SERVER, api_key: ApiKeyOption = None
) -> None:
    """Cancel a task: a queued one never starts, a running one stops at its next step."""
    task = request("POST", server, f"/tasks/{task_id}/cancel", api_key=api_key)
    console.print(
        f"task {task_id}: {task['status']}"
        + (" (cancel requested)" if task["status"] != "cancelled" else "")
    )


@workspaces_app.command("list")
def workspaces_list(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List workspaces, most recently used first."""
    found = request("GET", server, "/workspaces", api_key=api_key)
    if as_json:
        console.print_json(json.dumps(found))
        return
    table = Table("workspace", "status", "running", "backend", "last used", "repository")
    for ws in found:
        table.add_row(ws["workspace_id"], ws["status"], "yes" if ws["running"] else "no", ws["backend"],
                      ws["last_used_at"][:19], ws["repo_url"])  # fmt: skip
    console.print(table)


@workspaces_app.command("show")
def workspaces_show(workspace_id: str, server: ServerOption = DEFAULT_SERVER,
                    api_key: ApiKeyOption = None) -> None:  # fmt: skip
    """Show one workspace."""
    console.print_json(
        json.dumps(request("GET", server, f"/workspaces/{workspace_id}", api_key=api_key))
    )


@workspaces_app.command("rm")
def workspaces_rm(
    workspace_id: str,
    purge: Annotated[
        bool, typer.Option("--purge", help="also delete the workspace's files")
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Stop and remove a workspace's worker (and its files with --purge)."""
    try:
        response = httpx.delete(f"{server.rstrip('/')}/workspaces/{workspace_id}", params={"purge": purge},
                                headers=_headers(api_key), timeout=60, trust_env=False)  # fmt: skip
    except httpx.ConnectError:
        fail(f"cannot reach the orchestrator at {server}: is `anvyl serve` running?")
    _check(response, server)
    console.print(f"removed {workspace_id}" + (" and its files" if purge else " (files kept)"))


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
    from anvyl.orchestrator.cli.demo import run_demo

    raise typer.Exit(run_demo(port=port, query=query, console=console))


def main() -> None:
    app()
