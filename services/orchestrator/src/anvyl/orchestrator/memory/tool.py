"""`search_knowledge`: the model's tool over memory (earlier tasks) and the user's archives."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from anvyl.orchestrator.loop.tools import Tool
from anvyl.orchestrator.memory.base import Memory
from anvyl.orchestrator.memory.records import Hit, Scope

_MAX_CHARS = 1500  # per snippet in the tool's output


class SearchKnowledgeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, description="what to look for, in words")
    scope: Scope = Field(default="all", description="archives: the user's files; tasks: earlier "
                         "tasks of this workspace or agent; all: both")  # fmt: skip
    limit: int = Field(default=5, ge=1, le=20)


def render(hits: list[Hit]) -> str:
    if not hits:
        return "nothing found"
    parts = []
    for hit in hits:
        body = hit.text if len(hit.text) <= _MAX_CHARS else hit.text[:_MAX_CHARS] + " [...]"
        parts.append(f"[{hit.source}]\n{body}")
    return "\n\n".join(parts)


def search_knowledge_tool(memory: Memory, *, workspace_id: str | None, agent: str | None) -> Tool:
    async def run(arguments: dict[str, Any]) -> str:
        args = SearchKnowledgeArgs.model_validate(arguments)
        hits = await memory.search(args.query, scope=args.scope, workspace_id=workspace_id,
                                   agent=agent, limit=args.limit)  # fmt: skip
        return render(hits)

    return Tool(
        name="search_knowledge",
        description="Search the user's archives (documents, code) and the summaries of earlier "
        "tasks. Returns snippets, each with its source: archive, path and lines, or the task.",
        parameters=SearchKnowledgeArgs.model_json_schema(),
        read_only=True,
        destructive=False,
        run=run,
        source="memory",
    )
