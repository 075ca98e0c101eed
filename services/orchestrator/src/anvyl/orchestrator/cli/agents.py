"""`anvyl agent ...`: named agents (a profile bound to its own workspace) over the `/agents` routes.

Every command reaches the orchestrator at `--anvyl-host`/`--anvyl-port` (or `--server`/`ANVYL_URL`)
with its bearer key `--anvyl-api-key` (`ANVYL_API_KEY`); `--api-key` of `create` is the model
provider's key, sent once and never shown again (the API answers `api_key_set` only).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from anvyl.orchestrator.cli import hosts as hosts_cli
from anvyl.orchestrator.cli.agent_client import (
    AnvylHostOption,
    AnvylKeyOption,
    AnvylPortOption,
    ServerOption,
    call,
    orchestrator,
    sse,
)
from anvyl.orchestrator.cli.common import console, describe_event, follow_events, print_task

agents_app = typer.Typer(
    help="Named agents: create, start, act, logs, info, list, stop, remove; queries answered here, "
    "by one known host or by all: process, query-remote, broadcast.",
    no_args_is_help=True,
)

# --- output ----------------------------------------------------------------------------------------


def health_line(agent: dict[str, Any]) -> str:
    health = agent.get("provider_health")
    where = f"{agent['provider']} at {agent.get('base_url') or '(vendor default)'}"
    if not health:
        return f"provider {where}: not checked"
    verdict = "[green]reachable[/]" if health.get("ok") else "[red]NOT reachable[/]"
    latency = f" ({health['latency_ms']:.0f} ms)" if health.get("latency_ms") is not None else ""
    detail = f": {escape(str(health['detail']))}" if health.get("detail") else ""
    return f"provider {escape(where)}: {verdict}{latency}{detail}"


def print_profile(agent: dict[str, Any]) -> None:
    """The agent's settings as the orchestrator resolved them; the key only as set or not."""
    key = (
        "******** (set)"
        if agent.get("api_key_set")
        else "not set (the vendor's variable, e.g. OPENAI_API_KEY, on the orchestrator)"
    )
    backups = ", ".join(
        f"{b['provider']}/{b.get('model') or '-'}" + (" (key set)" if b.get("api_key_set") else "")
        for b in agent.get("backups") or []
    )
    policy = {k: v for k, v in (agent.get("policy") or {}).items() if v}
    rows = [
        ("name", agent["name"]),
        ("status", agent["status"]),
        ("provider", agent["provider"]),
        ("model", agent.get("model") or "-"),
        ("endpoint", agent.get("base_url") or "(vendor default)"),
        ("api key", key),
        ("backups", backups or "-"),
        ("system prompt", _short(agent.get("system_prompt")) or "-"),
        ("policy", json.dumps(policy) if policy else "-"),
        ("repository", agent.get("repo_url") or "(an empty git repository of its own)"),
        ("limits", f"max_steps={agent.get('max_steps') or '-'} timeout_s={agent.get('timeout_s') or '-'}"),
        ("workspace", agent.get("workspace_id") or "-"),
        ("container", agent.get("container") or "-"),
        ("created", str(agent.get("created_at", "-"))[:19]),
    ]  # fmt: skip
    for label, value in rows:
        console.print(f"{label:14} {escape(str(value))}", highlight=False, soft_wrap=True)


def _short(text: str | None, limit: int = 80) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --- commands ------------------------------------------------------------------------------------


@agents_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="lower-case letters, digits and dashes, up to 63")],
    provider: Annotated[
        str, typer.Option(help="lmstudio, ollama, openai, anthropic, xai, groq, gpt-oss, mlx")
    ] = "lmstudio",
    model: Annotated[
        str | None, typer.Option(help="model id (default: the vendor's)", show_default=False)
    ] = None,
    provider_host: Annotated[
        str | None, typer.Option(help="where the provider runs", show_default=False)
    ] = None,
    provider_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="the provider's port", show_default=False)
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            show_default=False,
            help="the provider's key (stored encrypted, never shown); default: its "
            "variable, e.g. OPENAI_API_KEY, on the orchestrator",
        ),
    ] = None,
    system_prompt: Annotated[str | None, typer.Option(show_default=False)] = None,
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            show_default=False,
            help="repository URL or path (default: an empty repository of its own)",
        ),
    ] = None,
    auto_start: Annotated[bool, typer.Option("--auto-start", help="start it right away")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="print the resolved settings and check the provider")
    ] = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """Create a named agent (a profile and its own workspace)."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    given = {"model": model, "provider_host": provider_host, "provider_port": provider_port,
             "api_key": api_key, "system_prompt": system_prompt, "repo_url": repo}  # fmt: skip
    body = {"name": name, "provider": provider, "auto_start": auto_start} | {
        k: v for k, v in given.items() if v is not None
    }
    with console.status(f"creating {name} ...", spinner="dots"):
        agent = call(
            orch,
            "POST",
            "/agents",
            body=body,
            timeout=300 if auto_start else 30,
            hints={
                409: f"or remove it first: `anvyl agent remove {name}`",
                422: "see `anvyl agent create --help`",
            },
        )
    console.print(f"created agent {agent['name']} ({agent['provider']}/{agent.get('model') or '-'}); "
                  f"status: {agent['status']}", highlight=False)  # fmt: skip
    if verbose:
        print_profile(agent)
        checked = call(orch, "GET", f"/agents/{name}", params={"check": "true"})
        console.print(health_line(checked), highlight=False)


@agents_app.command("start")
def start(
    name: str,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """Start the agent's worker (its container); it keeps running until `anvyl agent stop`."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    with console.status(f"starting {name} ...", spinner="dots"):
        agent = call(orch, "POST", f"/agents/{name}/start", timeout=300)
    console.print(f"started {name}: {agent['status']}, container {agent.get('container') or '-'}",
                  highlight=False)  # fmt: skip


@agents_app.command("stop")
def stop(
    name: str,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """Stop the agent's worker; its files are kept for the next start."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    agent = call(orch, "POST", f"/agents/{name}/stop", timeout=120)
    console.print(f"stopped {name}: {agent['status']} (files kept)", highlight=False)


def act(
    name: str,
    instruction: Annotated[str, typer.Argument(help="what the agent should do")],
    follow: Annotated[bool, typer.Option("--follow", help="show each step live")] = False,
    background: Annotated[
        bool, typer.Option("--background", help="queue it and print its id")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="task time limit, seconds", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the task as JSON")] = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """Give the agent an instruction: wait for the result (default), follow it live, or queue it."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    body: dict[str, Any] = {
        "query": instruction,
        "mode": "background" if background or follow else "sync",
    }
    if timeout is not None:
        body["timeout_s"] = timeout
    path, hints = f"/agents/{name}/act", {422: "see `anvyl agent act --help`"}
    if background or follow:
        accepted = call(orch, "POST", path, body=body, hints=hints)
        if not follow:
            if as_json:
                console.print_json(json.dumps(accepted))
            else:
                console.print(accepted["task_id"])
            return
        follow_events(orch.url, accepted["task_id"], orch.key)
        task = call(orch, "GET", f"/tasks/{accepted['task_id']}")
    else:
        with console.status(f"{name} is working on it ...", spinner="dots"):
            task = call(orch, "POST", path, body=body, timeout=3600, hints=hints)
    print_task(task, as_json)
    if task["status"] != "succeeded":
        raise typer.Exit(1)


agents_app.command("act")(act)
agents_app.command("execute", help="The same as `act`.")(act)
# Queries answered here, by one known host, by all (cli/hosts.py).
agents_app.command("process")(hosts_cli.process)
agents_app.command("query-remote")(hosts_cli.query_remote)
agents_app.command("broadcast")(hosts_cli.broadcast)


@agents_app.command("logs")
def logs(
    name: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep following until Ctrl-C")
    ] = False,
    tail: Annotated[int, typer.Option("--tail", min=0, help="lines of backlog to show")] = 100,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """The agent's tasks' steps and its container's log lines (the last --tail, then live with -f)."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    params = {"follow": str(follow).lower(), "tail": tail}
    opened = f"following {name}'s logs (Ctrl-C to stop)" if follow else ""
    try:
        for kind, data in sse(orch, f"/agents/{name}/logs", params, follow, opened):
            if kind == "log":
                console.print(data["line"], markup=False, highlight=False, soft_wrap=True)
            elif kind == "task":
                step = describe_event(data, data["task_id"])
                console.print(f"[dim]{data['task_id']} #{data['seq']}[/] {escape(step)}",
                              highlight=False, soft_wrap=True)  # fmt: skip
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@agents_app.command("info")
def info(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="print the agent as JSON")] = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """The agent's profile (its key masked), status, container and whether its provider answers."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    agent = call(orch, "GET", f"/agents/{name}", params={"check": "true"})
    if as_json:
        console.print_json(json.dumps(agent))
        return
    print_profile(agent)
    console.print(health_line(agent), highlight=False)


@agents_app.command("list")
def list_agents(
    running: Annotated[bool, typer.Option("--running", help="only running agents")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """List the agents by name."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    agents = call(orch, "GET", "/agents", params={"running": "true"} if running else None)
    if as_json:
        console.print_json(json.dumps(agents))
        return
    if not agents:
        console.print(
            "no running agents" if running else "no agents yet: `anvyl agent create NAME`"
        )
        return
    table = Table("agent", "status", "provider", "model", "endpoint", "container")
    for agent in agents:
        table.add_row(agent["name"], agent["status"], agent["provider"], agent.get("model") or "-",
                      agent.get("base_url") or "-", (agent.get("container") or "-")[:12])  # fmt: skip
    console.print(table)


@agents_app.command("remove")
def remove(
    name: str,
    force: Annotated[bool, typer.Option("--force", help="stop it first if it is running")] = False,
    purge: Annotated[
        bool, typer.Option("--purge", help="also delete its workspace's files")
    ] = False,
    anvyl_host: AnvylHostOption = None,
    anvyl_port: AnvylPortOption = None,
    server: ServerOption = None,
    anvyl_api_key: AnvylKeyOption = None,
) -> None:
    """Remove the agent (and with --purge its files)."""
    orch = orchestrator(anvyl_host, anvyl_port, server, anvyl_api_key)
    params = {"force": str(force).lower(), "purge": str(purge).lower()}
    call(orch, "DELETE", f"/agents/{name}", params=params, timeout=120)
    console.print(f"removed {name}" + (" and its files" if purge else " (files kept)"))
