"""The host tools of the model: `hosts__list_hosts`, `hosts__query_host`, `hosts__broadcast`.

Offered to a task when this orchestrator knows other hosts. A query the model sends on carries the
task's own forwarding (hops, trace, path), so a loop between hosts is refused like any other.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from anvyl.orchestrator.hosts.client import HostError
from anvyl.orchestrator.hosts.forwarding import Forwarded
from anvyl.orchestrator.hosts.models import MAX_QUERY_CHARS, MAX_TIMEOUT_S, HostAnswer
from anvyl.orchestrator.hosts.service import HostProblem, HostService
from anvyl.orchestrator.loop.tools import Tool, ToolError

PREFIX = "hosts__"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _NoArgs(_Args):
    pass


class _QueryHostArgs(_Args):
    host_id: str = Field(
        min_length=1, max_length=63, description="a host id from hosts__list_hosts"
    )
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS,
                       description="what to ask that host, in plain words; its own agent answers")  # fmt: skip
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S, description="default 30")


class _BroadcastArgs(_Args):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS,
                       description="what to ask every known host; each answers from its own machine")  # fmt: skip
    include_self: bool = Field(default=False, description="this host answers too")
    timeout_s: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT_S, description="per host, default 30"
    )


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def describe(answer: HostAnswer) -> str:
    head = f"## {answer.name} ({answer.host_id}): {answer.status} in {answer.latency_s:.2f}s"
    return f"{head}\n{answer.result if answer.result is not None else answer.error or ''}".rstrip()


class HostTools:
    """A tool source (loop.tools.ToolSource) over the known hosts."""

    def __init__(self, hosts: HostService) -> None:
        self.hosts = hosts

    def tools_for(self, request: dict[str, Any]) -> list[Tool]:
        if self.hosts.known == 0:
            return []
        forwarded = Forwarded.from_request(request)

        async def list_hosts(arguments: dict[str, Any]) -> str:
            _NoArgs.model_validate(arguments)
            rows = await self.hosts.list_hosts()
            lines = [f"- {h.host_id}: {h.name} at {h.url} (kind {h.kind}, {h.status}"
                     + (f", tags {', '.join(h.tags)}" if h.tags else "") + ")" for h in rows]  # fmt: skip
            return "\n".join(lines) or "no known hosts"

        async def query_host(arguments: dict[str, Any]) -> str:
            args = _QueryHostArgs.model_validate(arguments)
            try:
                host = await self.hosts.host(args.host_id)
                answer = await self.hosts.ask(
                    host, args.query, forwarded, self.hosts.timeout(args.timeout_s)
                )
            except (HostError, HostProblem) as exc:
                raise ToolError(str(exc)) from None
            return describe(answer)

        async def broadcast(arguments: dict[str, Any]) -> str:
            args = _BroadcastArgs.model_validate(arguments)
            try:
                answers = await self.hosts.broadcast(args.query, forwarded, args.timeout_s,
                                                     include_self=args.include_self)  # fmt: skip
            except HostProblem as exc:
                raise ToolError(exc.detail) from None
            return "\n\n".join(describe(a) for a in answers) or "no known hosts"

        return [
            Tool(f"{PREFIX}list_hosts", "List the other hosts (Anvyl orchestrators) this one knows, "
                 "with their status.", _schema(_NoArgs), True, False, list_hosts, source="hosts"),
            Tool(f"{PREFIX}query_host", "Ask one known host a question in plain words; its own agent "
                 "answers with its own tools (e.g. its containers or resources).",
                 _schema(_QueryHostArgs), False, False, query_host, source="hosts"),
            Tool(f"{PREFIX}broadcast", "Ask every known host the same question at once; each "
                 "answers from its own machine (a host that does not answer is reported, not waited for).",
                 _schema(_BroadcastArgs), False, False, broadcast, source="hosts"),
        ]  # fmt: skip
