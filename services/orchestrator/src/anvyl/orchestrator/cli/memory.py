"""`anvyl memory ...`: search what earlier tasks and the user's archives hold, forget, index."""

from __future__ import annotations

import json
import os
import time
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from anvyl.orchestrator.cli.common import (
    DEFAULT_SERVER,
    ApiKeyOption,
    ServerOption,
    console,
    fail,
    request,
)

memory_app = typer.Typer(help="Memory and knowledge: search, forget, index archives.",
                         no_args_is_help=True)  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


@memory_app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for, in words")],
    scope: Annotated[str, typer.Option(help="all | tasks | archives")] = "all",
    workspace: Annotated[str | None, typer.Option(help="only this workspace's tasks")] = None,
    agent: Annotated[str | None, typer.Option(help="only this agent's tasks")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The memories and archive snippets most relevant to QUERY, best first, with their source."""
    params: dict[str, Any] = {"q": query, "scope": scope, "limit": limit}
    params |= {k: v for k, v in {"workspace": workspace, "agent": agent}.items() if v is not None}
    found = request("GET", server, "/memory/search", params=params, api_key=api_key)
    if as_json:
        console.print_json(json.dumps(found))
        return
    if not found["hits"]:
        console.print("nothing found")
        return
    table = Table("score", "source", "text", show_lines=True)
    for hit in found["hits"]:
        text = hit["text"] if len(hit["text"]) <= 400 else hit["text"][:400] + " ..."
        table.add_row(f"{hit['score']:.4f}", escape(hit["source_label"]), escape(text))
    console.print(table)


@memory_app.command()
def forget(
    workspace: Annotated[str | None, typer.Option(help="forget this workspace's tasks")] = None,
    agent: Annotated[str | None, typer.Option(help="forget this agent's tasks")] = None,
    archive: Annotated[str | None, typer.Option(help="forget this archive's snippets")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Forget what a workspace's or an agent's tasks left, or an archive."""
    if workspace is None and agent is None and archive is None:
        fail("name what to forget: --workspace ID, --agent NAME or --archive LOCATION")
    removed = 0
    if workspace is not None:
        removed += request("DELETE", server, f"/memory/workspaces/{quote(workspace, safe='')}",
                           api_key=api_key)["removed"]  # fmt: skip
    if agent is not None:
        removed += request("DELETE", server, f"/memory/agents/{quote(agent, safe='')}",
                           api_key=api_key)["removed"]  # fmt: skip
    if archive is not None:
        if os.path.exists(archive):
            archive = os.path.abspath(archive)  # known by the location it was indexed as
        removed += request("DELETE", server, "/memory/archives", params={"location": archive},
                           api_key=api_key)["removed"]  # fmt: skip
    console.print(f"forgot {removed} item(s)")


@memory_app.command()
def index(
    locations: Annotated[
        list[str], typer.Argument(help="directories, .zip, .tar.gz, git repositories")
    ],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="wait until indexed")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait, at most")] = 600.0,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Index these archives (only them: archives not listed are forgotten); changed files only."""
    absolute = [os.path.abspath(p) if os.path.exists(p) else p for p in locations]
    request("POST", server, "/memory/archives", json_body={"locations": absolute}, api_key=api_key)
    deadline = time.monotonic() + timeout
    while wait:
        states = {
            p["location"]: p for p in request("GET", server, "/memory/archives", api_key=api_key)
        }
        mine = [states.get(location) for location in absolute]
        if all(p is not None and p["state"] in ("done", "failed") for p in mine):
            for p in mine:
                assert p is not None
                console.print(f"{escape(p['location'])}: {p['state']}, {p['files_indexed']} indexed, "
                              f"{p['files_unchanged']} unchanged, {p['files_skipped']} skipped"
                              + (f" [red]{escape(p['error'])}[/]" if p.get("error") else ""))  # fmt: skip
            return
        if time.monotonic() > deadline:
            fail(f"not indexed within {timeout:g}s; see `GET /memory/archives`")
        time.sleep(0.5)
    console.print("indexing in the background")
