"""`anvyl workspaces ...`: list, show and remove workspaces."""

from __future__ import annotations

import json
from typing import Annotated

import httpx
import typer
from rich.table import Table

from anvyl.orchestrator.cli.common import (
    DEFAULT_SERVER,
    ApiKeyOption,
    ServerOption,
    check_response,
    console,
    fail,
    headers,
    request,
)

workspaces_app = typer.Typer(help="Inspect and remove workspaces.", no_args_is_help=True)


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
                                headers=headers(api_key), timeout=60, trust_env=False)  # fmt: skip
    except httpx.ConnectError:
        fail(f"cannot reach the orchestrator at {server}: is `anvyl serve` running?")
    check_response(response, server)
    console.print(f"removed {workspace_id}" + (" and its files" if purge else " (files kept)"))
