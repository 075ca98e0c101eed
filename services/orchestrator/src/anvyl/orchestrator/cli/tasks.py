"""`anvyl orchestrate` and `anvyl tasks ...`: send tasks, follow, inspect and decide them."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from anvyl.orchestrator.cli.common import (
    DEFAULT_SERVER,
    ApiKeyOption,
    ServerOption,
    console,
    describe_event,
    follow_events,
    print_task,
    request,
)

tasks_app = typer.Typer(help="Inspect tasks.", no_args_is_help=True)


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
    model: Annotated[
        str | None,
        typer.Option("--model", help="model endpoint tried first (default: your default model)"),
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
    if model is not None:
        body["model"] = model
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
        console.print(f"[dim]#{event['seq']}[/] {escape(describe_event(event, task_id))}")


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
