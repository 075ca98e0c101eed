"""How `anvyl agent` reaches the orchestrator: the options every command takes, one request, a
server-sent event stream, and error answers turned into what to do (exit status 2 for refused input)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from anvyl.orchestrator.cli.common import DEFAULT_SERVER, errors, fail, headers

AnvylHostOption = Annotated[
    str | None,
    typer.Option("--anvyl-host", help="orchestrator host (default: 127.0.0.1)", show_default=False),
]
AnvylPortOption = Annotated[
    int | None,
    typer.Option("--anvyl-port", min=1, max=65535, help="orchestrator port (default: 8080)",
                 show_default=False),
]  # fmt: skip
ServerOption = Annotated[
    str | None,
    typer.Option("--server", envvar="ANVYL_URL", show_default=False,
                 help="orchestrator URL (instead of --anvyl-host/--anvyl-port)"),
]  # fmt: skip
AnvylKeyOption = Annotated[
    str | None,
    typer.Option("--anvyl-api-key", envvar="ANVYL_API_KEY", show_default=False,
                 help="the orchestrator's API key (bearer); not the model provider's"),
]  # fmt: skip


@dataclass(frozen=True)
class Orchestrator:
    url: str
    key: str | None


def orchestrator(host: str | None, port: int | None, server: str | None,
                 key: str | None) -> Orchestrator:  # fmt: skip
    """--anvyl-host/--anvyl-port when given (the other defaulted), else --server/ANVYL_URL."""
    if host is not None or port is not None:
        url = f"http://{host or '127.0.0.1'}:{port or 8080}"
    else:
        url = (server or DEFAULT_SERVER).rstrip("/")
    return Orchestrator(url, key)


def _unreachable(url: str) -> str:
    return (f"cannot reach the orchestrator at {url}: is `anvyl serve` running? "
            "(point at it with --anvyl-host/--anvyl-port or --server/ANVYL_URL)")  # fmt: skip


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


def _check(
    response: httpx.Response, orch: Orchestrator, hints: dict[int, str] | None = None
) -> None:
    """Turn an error answer into a message that says what to do, and an exit status: 2 for input
    the orchestrator refused (422), 1 for everything else. `hints` adds a what-to-do by status."""
    if response.status_code < 400:
        return
    detail = _detail(response)
    if hints and response.status_code in hints:
        detail = f"{detail}; {hints[response.status_code]}"
    if response.status_code == 401:
        fail(f"the orchestrator at {orch.url} refused the key: set --anvyl-api-key (or ANVYL_API_KEY) "
             "to one of its ANVYL_API_KEYS")  # fmt: skip
    if response.status_code == 422:
        fail(detail, 2)
    if response.status_code == 404 and "no agent named" in detail:
        fail(f"{detail}; `anvyl agent list` shows them, `anvyl agent create NAME` makes one")
    fail(f"{response.status_code}: {detail}")


def call(orch: Orchestrator, method: str, path: str, *, body: Any = None,
         params: dict[str, Any] | None = None, timeout: float = 30.0,
         hints: dict[int, str] | None = None) -> Any:  # fmt: skip
    """One request to the orchestrator; the decoded answer (None for 204)."""
    try:
        response = httpx.request(method, f"{orch.url}{path}", json=body, params=params,
                                 headers=headers(orch.key), trust_env=False,
                                 timeout=httpx.Timeout(timeout, connect=5.0))  # fmt: skip
    except httpx.ConnectError:
        fail(_unreachable(orch.url))
    except httpx.TimeoutException:
        fail(f"the orchestrator at {orch.url} did not answer within {timeout:.0f}s")
    _check(response, orch, hints)
    return None if response.status_code == 204 else response.json()


def sse(orch: Orchestrator, path: str, params: dict[str, Any], follow: bool,
         opened: str = "") -> Iterator[tuple[str, dict[str, Any]]]:  # fmt: skip
    """(event name, decoded data) of each server-sent event until the stream ends; `opened` is
    printed (to stderr) once the orchestrator has answered."""
    # Following waits as long as the agent is quiet; a backlog arrives at once or not at all.
    timeout = httpx.Timeout(None if follow else 30.0, connect=5.0)
    try:
        with httpx.stream("GET", f"{orch.url}{path}", params=params, headers=headers(orch.key),
                          timeout=timeout, trust_env=False) as response:  # fmt: skip
            if response.status_code >= 400:
                response.read()
                _check(response, orch)
            if opened:
                errors.print(f"[dim]{escape(opened)}[/]")
            kind, data = "message", ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and data:
                    yield kind, json.loads(data)
                    kind, data = "message", ""
    except httpx.ConnectError:
        fail(_unreachable(orch.url))
    except httpx.TimeoutException:
        fail(f"the orchestrator at {orch.url} stopped sending the logs (no answer in 30s)")
