"""`anvyl settings show|set KEY VALUE|reset|history`: the user's defaults, kept by the orchestrator
(`/settings`). Not `anvyl config show`, which prints this process's own settings."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from anvyl.orchestrator.cli.common import (
    DEFAULT_SERVER,
    ApiKeyOption,
    ServerOption,
    console,
    fail,
    request,
)
from anvyl.orchestrator.user_settings.models import FIELDS

settings_app = typer.Typer(
    help="Your defaults: model, agent, local or online preference, RAG archives, memory.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
_CLEARED = ("", "none", "null")
_TRUE, _FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")
_VALUE_HELP = "the new value; none clears a default; rag_archives: paths or URLs, comma-separated"


def value_of(key: str, value: str) -> Any:
    """The JSON value of `anvyl settings set KEY VALUE` (the server checks it further)."""
    if key in ("default_model", "default_agent"):
        return None if value.lower() in _CLEARED else value
    if key == "memory_enabled":
        if value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        fail(f"memory_enabled: {value!r} is not one of {', '.join(_TRUE + _FALSE)}", 2)
    if key == "rag_archives":
        if value.lower() in _CLEARED:
            return []
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except ValueError as exc:
                fail(f"rag_archives: not a JSON list ({exc}); or give paths separated by commas", 2)
        return [entry.strip() for entry in value.split(",") if entry.strip()]
    return value


def _shown(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _print(found: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(found))
        return
    table = Table("setting", "value")
    for key in FIELDS:
        table.add_row(key, _shown(found[key]))
    console.print(table)
    console.print(f"[dim]last changed: {found['updated_at'] or 'never'}[/]")


@settings_app.command("show")
def settings_show(server: ServerOption = DEFAULT_SERVER, api_key: ApiKeyOption = None,
                  as_json: JsonOption = False) -> None:  # fmt: skip
    """Show your settings (defaults where never set)."""
    _print(request("GET", server, "/settings", api_key=api_key), as_json)


@settings_app.command("set")
def settings_set(
    key: Annotated[str, typer.Argument(help=f"one of {', '.join(FIELDS)}")],
    value: Annotated[str, typer.Argument(help=_VALUE_HELP)],
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change one setting (the change is recorded: `anvyl settings history`)."""
    key = key.replace("-", "_")
    if key not in FIELDS:
        fail(f"no setting named {key!r}; settings: {', '.join(FIELDS)}", 2)
    body = {key: value_of(key, value)}
    _print(request("PATCH", server, "/settings", json_body=body, api_key=api_key), as_json)


@settings_app.command("reset")
def settings_reset(server: ServerOption = DEFAULT_SERVER, api_key: ApiKeyOption = None,
                   as_json: JsonOption = False) -> None:  # fmt: skip
    """Put every setting back to its default."""
    _print(request("DELETE", server, "/settings", api_key=api_key), as_json)


@settings_app.command("history")
def settings_history(
    limit: Annotated[int, typer.Option(min=1, max=500, help="at most this many")] = 20,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The changes, newest first: when, which setting, from what to what, through which key."""
    changes = request("GET", server, "/settings/history", params={"limit": limit}, api_key=api_key)
    if as_json:
        console.print_json(json.dumps(changes))
        return
    table = Table("when", "setting", "from", "to", "key")
    for change in changes:
        table.add_row(change["changed_at"][:19], change["field"], json.dumps(change["old_value"]),
                      json.dumps(change["new_value"]), change["api_key"])  # fmt: skip
    console.print(table)
