"""Shared by every `anvyl` command group: output, settings, HTTP calls to the orchestrator, event display."""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.status import Status

from anvyl.orchestrator.settings import Settings

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


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def check_response(response: httpx.Response, server: str) -> None:
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
                                 headers=headers(api_key), timeout=httpx.Timeout(timeout, connect=5.0),
                                 trust_env=False)  # fmt: skip
    except httpx.ConnectError:
        fail(f"cannot reach the orchestrator at {server}: is `anvyl serve` running?")
    except httpx.TimeoutException:
        fail(f"the orchestrator at {server} did not answer within {timeout:.0f}s")
    check_response(response, server)
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
        chosen = meta.get("settings") or {}
        preference = f" preference={chosen['preference']}" if chosen.get("preference") else ""
        console.print(
            f"[dim]backend={meta.get('backend')} model={meta.get('model')} "
            f"latency={meta.get('latency_s')}s tools=\\[{calls}] workspace={task.get('workspace_id')}"
            f"{preference}[/]"
        )


def describe_event(event: dict[str, Any], task_id: str) -> str:
    data = event["data"]
    kind = event["type"]
    if kind == "status" and data.get("pending"):
        pending = data["pending"]
        return (f"waiting for approval: {pending['tool']}({json.dumps(pending['arguments'])}) "
                f"[{pending['reason']}] -> anvyl tasks approve|reject {task_id}")  # fmt: skip
    if kind == "status":
        extra = f" ({data['reason']})" if data.get("reason") else ""
        return f"status: {data['status']}{extra}"
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


class _FollowPrinter:
    """Step lines, one per stored event, and the model's text as it streams (token events), dim.

    On a terminal the streamed text shows in the spinner's line (the last part of it), replaced by
    the step line when the turn is done; elsewhere (a pipe, a log) it is printed as it comes, on its
    own lines between the step lines.
    """

    def __init__(self, task_id: str, spinner: Status) -> None:
        self.task_id = task_id
        self.spinner = spinner
        self.live = console.is_terminal
        self.text = ""  # the current turn's streamed text
        self.line_open = False  # (not a terminal) streamed text printed without its newline yet

    def token(self, data: dict[str, Any]) -> None:
        if data["kind"] == "discard":
            self.text = ""
            self._end_line()
            console.print("[dim](the model's stream broke; asking again)[/]")
            return
        if data["kind"] != "content":
            return
        self.text += data["text"]
        if self.live:
            tail = " ".join(self.text.split())[-70:]
            self.spinner.update(f"[dim]{escape(tail)}[/]")
        else:
            console.print(
                data["text"], style="dim", end="", markup=False, highlight=False, soft_wrap=True
            )
            self.line_open = True

    def step(self, event: dict[str, Any]) -> None:
        self._end_line()
        self.text = ""
        console.print(f"[dim]#{event['seq']}[/] {escape(describe_event(event, self.task_id))}")
        self.spinner.update(f"step {event['seq']} done; working ...")

    def _end_line(self) -> None:
        if self.line_open:
            console.print()
            self.line_open = False


def follow_events(server: str, task_id: str, api_key: str | None) -> None:
    """Print the task's events as they happen (SSE), with the model's text as it streams."""
    url = f"{server.rstrip('/')}/tasks/{task_id}/events"
    last_seq = 0
    for _ in range(5):  # reconnect a few times if the stream drops, without repeating events
        stream_headers = headers(api_key) | ({"Last-Event-ID": str(last_seq)} if last_seq else {})
        try:
            with (
                console.status("waiting for the next step ...", spinner="dots") as spinner,
                httpx.stream(
                    "GET",
                    url,
                    headers=stream_headers,
                    timeout=httpx.Timeout(None, connect=5.0),
                    trust_env=False,
                ) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    check_response(response, server)
                printer = _FollowPrinter(task_id, spinner)
                data_line = ""
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        data_line = line[5:].strip()
                    elif line == "" and data_line:
                        event = json.loads(data_line)
                        data_line = ""
                        if event["type"] == "token":
                            printer.token(event["data"])
                            continue
                        last_seq = event["seq"]
                        printer.step(event)
                        if event["type"] == "result":
                            return
        except httpx.ConnectError:
            fail(f"cannot reach the orchestrator at {server}: is `anvyl serve` running?")
        except httpx.TransportError:
            continue
    fail("the event stream kept dropping; see `anvyl tasks events " + task_id + "`")
