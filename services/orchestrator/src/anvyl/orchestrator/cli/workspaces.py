"""`anvyl workspaces ...`: list, show, remove, snapshot and restore workspaces."""

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

workspaces_app = typer.Typer(
    help="Inspect, remove, snapshot and restore workspaces.", no_args_is_help=True
)
_SNAPSHOT_TIMEOUT_S = 900.0  # a large workspace takes a while to pack and upload


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


@workspaces_app.command("snapshot")
def workspaces_snapshot(
    workspace_id: str,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Upload a snapshot of a workspace's files to the server's bucket (ANVYL_GCS_BUCKET)."""
    info = request("POST", server, f"/workspaces/{workspace_id}/snapshot", api_key=api_key,
                   timeout=_SNAPSHOT_TIMEOUT_S)  # fmt: skip
    _print_snapshot("snapshot", info, as_json)


@workspaces_app.command("restore")
def workspaces_restore(
    workspace_id: str,
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="the snapshot's name; default: the latest")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replace a workspace's files with those of a snapshot."""
    params = {"snapshot": snapshot} if snapshot else None
    info = request("POST", server, f"/workspaces/{workspace_id}/restore", api_key=api_key,
                   params=params, timeout=_SNAPSHOT_TIMEOUT_S)  # fmt: skip
    _print_snapshot("restored", info, as_json)


def _print_snapshot(what: str, info: dict[str, object], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(info))
        return
    console.print(f"{what} {info['workspace_id']}: {info['snapshot']} ({info['size']} bytes, "
                  f"{info['members']} entries) at {info['location']}", highlight=False,
                  soft_wrap=True)  # one line, also for scripts  # fmt: skip
