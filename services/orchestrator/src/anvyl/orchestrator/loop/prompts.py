"""The system prompt: what the model is told about its workspace, tools, limits and memory."""

from __future__ import annotations

from anvyl.orchestrator.loop.tools import Toolset


def system_prompt(
    *,
    repo: str | None,
    workspace_id: str | None,
    toolset: Toolset,
    max_steps: int,
    timeout_s: float,
    memory: list[str],
) -> str:
    lines = [
        "You are Anvyl's agent. You work by calling tools and then give a short, factual answer."
    ]
    if repo:
        lines.append(f"You work in the git repository {repo} (workspace {workspace_id}); paths are "
                     "relative to its root. Your changes stay in this workspace until you commit.")  # fmt: skip
    else:
        lines.append("This task has no repository: use the infrastructure tools.")
    lines.append(f"Tools: {', '.join(toolset.names) or 'none'}. Tools named server__tool run on MCP servers; "
                 "some need a person's approval and may be rejected.")  # fmt: skip
    lines.append(f"Limits: at most {max_steps} model turns and {timeout_s:g} seconds in all.")
    lines.append("Say plainly what you did, what you found, and what failed; never claim a result a tool "
                 "did not give you.")  # fmt: skip
    if memory:
        lines.append("Earlier tasks of this workspace or agent, the most relevant to this one first "
                     "(search_knowledge finds more, and the user's archives):")  # fmt: skip
        lines += [f"- {item}" for item in memory]
    return "\n".join(lines)


def summary_for_memory(query: str, answer: str) -> str:
    first = " ".join(answer.split())[:280]
    return f"{' '.join(query.split())[:160]} -> {first}"
