"""`anvyl hosts add|list|rm|info` (known hosts) and `anvyl agent process|query-remote|broadcast`
(a query answered here, by one host, by all), over the orchestrator's `/agent/...` routes."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from anvyl.orchestrator.cli.agent_client import (
    AnvylHostOption,
    AnvylKeyOption,
    AnvylPortOption,
    ServerOption,
    call,
    orchestrator,
)
from anvyl.orchestrator.cli.common import console, print_task

hosts_app = typer.Typer(help="Known hosts (other Anvyl orchestrators): add, list, rm, info.",
                        no_args_is_help=True)  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="print the answer as JSON")]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", min=0.1, max=3600, help="seconds to wait for each host (default 30)",
                 show_default=False),
]  # fmt: skip
_HOST_HINTS = {404: "`anvyl hosts list` shows the known hosts"}
_COLOURS = {"online": "green", "offline": "red", "succeeded": "green", "failed": "red"}


def _coloured(value: str) -> str:
    colour = _COLOURS.get(value, "yellow")
    return f"[{colour}]{escape(value)}[/]"


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data))


def _latency(host: dict[str, Any]) -> str:
    return f"{host['latency_ms']:.0f} ms" if host.get("latency_ms") is not None else "-"


# --- anvyl hosts ------------------------------------------------------------------------------------


@hosts_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="what to call the host")],
    url: Annotated[str, typer.Argument(help="its orchestrator's URL, e.g. http://10.0.0.2:8080")],
    host_id: Annotated[
        str | None, typer.Option("--id", help="its id (default: from the name)", show_default=False)
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="ANVYL_HOST_TOKEN",
            show_default=False,
            help="its API key (one of its ANVYL_API_KEYS); stored encrypted",
        ),
    ] = None,
    kind: Annotated[str, typer.Option(help="anvyl, or a2a for an A2A agent")] = "anvyl",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="a tag (repeatable)")] = None,
    as_json: JsonOption = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """Remember a host; the orchestrator checks it at once and then periodically."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    body: dict[str, Any] = {"name": name, "url": url, "kind": kind, "tags": tag or []}
    if host_id is not None:
        body["host_id"] = host_id
    if token is not None:
        body["token"] = token
    host = call(orch, "POST", "/agent/hosts", body=body,
                hints={409: "`anvyl hosts rm ID` first, or give another --id"})  # fmt: skip
    if as_json:
        _print_json(host)
        return
    token_note = "token stored encrypted" if host["token_set"] else "no token"
    console.print(f"added host [bold]{escape(host['host_id'])}[/] ({escape(host['name'])}) at "
                  f"{escape(host['url'])}, kind {host['kind']}, {token_note}", highlight=False)  # fmt: skip


@hosts_app.command("list")
def list_hosts(
    as_json: JsonOption = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """The known hosts with their last checked status."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    hosts = call(orch, "GET", "/agent/hosts")
    if as_json:
        _print_json(hosts)
        return
    if not hosts:
        console.print("no known hosts yet: `anvyl hosts add NAME URL --token KEY`")
        return
    table = Table("id", "name", "url", "kind", "status", "last seen", "latency", "version", "tags")
    for host in hosts:
        table.add_row(escape(host["host_id"]), escape(host["name"]), escape(host["url"]), host["kind"],
                      _coloured(host["status"]), str(host.get("last_seen") or "-")[:19], _latency(host),
                      escape(host.get("version") or "-"), escape(", ".join(host["tags"]) or "-"))  # fmt: skip
    console.print(table)


@hosts_app.command("rm")
def remove(
    host_id: Annotated[str, typer.Argument(help="the host's id (`anvyl hosts list`)")],
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """Forget a host (its token with it)."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    call(orch, "DELETE", f"/agent/hosts/{host_id}", hints=_HOST_HINTS)
    console.print(f"removed host {escape(host_id)}", highlight=False)


@hosts_app.command("info")
def info(
    host_id: Annotated[
        str | None,
        typer.Argument(help="a known host; default: the orchestrator itself", show_default=False),
    ] = None,
    as_json: JsonOption = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """This orchestrator (its id, version, agents, models, hub servers, load), or a known host."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    if host_id is not None:
        found = call(orch, "GET", f"/agent/hosts/{host_id}", hints=_HOST_HINTS)
        if as_json:
            _print_json(found)
            return
        rows: list[tuple[str, Any]] = [
            ("id", found["host_id"]), ("name", found["name"]), ("url", found["url"]),
            ("kind", found["kind"]), ("token", "set (encrypted)" if found["token_set"] else "none"),
            ("tags", ", ".join(found["tags"]) or "-"), ("added", str(found["added_at"])[:19]),
            ("status", found["status"]), ("last seen", str(found.get("last_seen") or "-")[:19]),
            ("latency", _latency(found)), ("version", found.get("version") or "-"),
            ("last error", found.get("last_error") or "-"),
        ]  # fmt: skip
    else:
        me = call(orch, "GET", "/agent/info")
        if as_json:
            _print_json(me)
            return
        load = me["load"]
        rows = [
            ("id", me["host_id"]), ("name", me["name"]), ("version", me["version"]),
            ("agents", ", ".join(me["agents"]) or "-"), ("models", ", ".join(me["models"]) or "-"),
            ("hub servers", ", ".join(me["hub_servers"]) or "-"), ("tools", me["tools"]),
            ("known hosts", me["known_hosts"]),
            ("load", f"{load['load_avg']} on {load['cpu_count']} CPUs; tasks running "
                     f"{load['tasks_running']}, queued {load['tasks_queued']}, slots {load['task_slots']}"),
        ]  # fmt: skip
    for label, value in rows:
        console.print(f"{label:12} {escape(str(value))}", highlight=False, soft_wrap=True)


# --- anvyl agent process | query-remote | broadcast ----------------------------------------------


def _print_answer(answer: dict[str, Any]) -> None:
    console.print(f"[bold]{escape(answer['name'])}[/] ({escape(answer['host_id'])}) "
                  f"{_coloured(answer['status'])} in {answer['latency_s']:.2f}s", highlight=False)  # fmt: skip
    text = answer.get("result") if answer.get("result") is not None else answer.get("error")
    if text:
        console.print(text, markup=False, highlight=False)


def process(
    query: Annotated[str, typer.Argument(help="what to do, in plain words")],
    repo: Annotated[
        str | None, typer.Option("--repo", help="a repository to work in", show_default=False)
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.1, help="task time limit, seconds", show_default=False),
    ] = None,
    as_json: JsonOption = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """A query answered by this orchestrator (its model, or the built-in planner), waited for."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    body: dict[str, Any] = {"query": query}
    if repo is not None:
        body["repo_url"] = repo
    if timeout is not None:
        body["timeout_s"] = timeout
    with console.status("working on it ...", spinner="dots"):
        task = call(orch, "POST", "/agent/process", body=body, timeout=(timeout or 3600) + 30)
    print_task(task, as_json)
    if task["status"] != "succeeded":
        raise typer.Exit(1)


def query_remote(
    host_id: Annotated[str, typer.Argument(help="a known host (`anvyl hosts list`)")],
    query: Annotated[str, typer.Argument(help="what to ask it")],
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """Ask one known host; its own agent answers (its model, or its built-in planner)."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    body: dict[str, Any] = {"host_id": host_id, "query": query}
    if timeout is not None:
        body["timeout_s"] = timeout
    with console.status(f"asking {host_id} ...", spinner="dots"):
        answer = call(orch, "POST", "/agent/remote-query", body=body, timeout=(timeout or 30) + 15,
                      hints=_HOST_HINTS)  # fmt: skip
    if as_json:
        _print_json(answer)
    else:
        _print_answer(answer)
    if answer["status"] != "succeeded":
        raise typer.Exit(1)


def broadcast(
    query: Annotated[str, typer.Argument(help="what to ask every host")],
    include_self: Annotated[
        bool, typer.Option("--include-self", help="this orchestrator answers too")
    ] = False,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="only hosts with this tag (repeatable)")
    ] = None,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """Ask every known host at once; one answer per host (a host that does not answer: its error)."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    body: dict[str, Any] = {"query": query, "include_self": include_self, "tags": tag or []}
    if timeout is not None:
        body["timeout_s"] = timeout
    with console.status("asking every host ...", spinner="dots"):
        answers = call(orch, "POST", "/agent/broadcast", body=body, timeout=(timeout or 30) + 15)
    if as_json:
        _print_json(answers)
        return
    if not answers:
        console.print("no hosts to ask: `anvyl hosts add NAME URL --token KEY` (or --include-self)")
        return
    table = Table("host", "status", "latency", "answer")
    for answer in answers:
        text = (
            answer.get("result") if answer.get("result") is not None else answer.get("error") or ""
        )
        table.add_row(f"{escape(answer['name'])}\n({escape(answer['host_id'])})", _coloured(answer["status"]),
                      f"{answer['latency_s']:.2f}s", escape(text))  # fmt: skip
    console.print(table)
    if any(a["status"] != "succeeded" for a in answers):
        raise typer.Exit(1)
