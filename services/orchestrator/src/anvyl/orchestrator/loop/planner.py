"""The built-in planner: answers a few plain requests with real tool calls and no language model.

It is the last link of the model chain, never a silent substitute: every answer says no model was used.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from anvyl.orchestrator.loop.tools import ToolCall

BACKEND_NAME = "builtin-planner"
NO_MODEL_NOTE = "(Answered by Anvyl's built-in planner: no language model was used.)"
CAPABILITIES = (
    "list files, show git status, show the git log, show a file (e.g. 'show README.md'), "
    "run a command given in backticks (e.g. 'run `make test`'), and with the MCP hub: show "
    "containers, host resources, host info"
)


class PlannerCannotAnswer(ValueError):
    """The request needs a language model and none is configured or reachable."""


@dataclass(frozen=True)
class PlannedCall:
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


_FILE_TOKEN = r"(?P<path>[\w.-]*[\w-]\.[\w]+|[\w.-]+(?:/[\w.-]+)+)"
_RUN = re.compile(r"\b(run|execute)\b[^`]*`(?P<command>[^`]+)`", re.IGNORECASE)
_INTENTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(containers?|docker\s+ps)\b"), "docker__list_containers"),
    (re.compile(r"\b(host|system|machine)\b.*\b(resources?|usage|load|cpu|memory|disk)\b|\bresource usage\b"),
     "infra__get_host_resources"),
    (re.compile(r"\b(host|system|machine)\s+(info|information|details)\b"), "infra__get_host_info"),
    (re.compile(r"\bgit\s+status\b|\b(uncommitted|pending)\s+changes\b|\bwhat\s+changed\b"), "git_status"),
    (re.compile(r"\bgit\s+log\b|\b(recent|last|latest)\s+commits?\b|\bcommit\s+history\b"), "git_log"),
    (re.compile(rf"\b(show|read|cat|print|display|open|view)\b(\s+(me|the|file|contents\s+of))*\s+{_FILE_TOKEN}"),
     "read_file"),
    (re.compile(r"\b(list|show|what|which)\b.*\b(files?|contents|directory|folder)\b|^\s*ls\b"), "list_files"),
]  # fmt: skip


def plan(query: str, available: Collection[str]) -> PlannedCall:
    """Map a plain request to one call of an available tool, or say that a model is needed."""
    if (run := _RUN.search(query)) and "run_shell" in available:
        return PlannedCall("run_shell", {"command": run["command"].strip()})
    text = query.strip().lower()
    for pattern, tool in _INTENTS:
        match = pattern.search(text)
        if match is None or tool not in available:
            continue
        if tool == "read_file":
            # Take the path from the original text: file names are case-sensitive.
            original = re.search(re.escape(match["path"]), query, re.IGNORECASE)
            return PlannedCall(tool, {"path": original.group(0) if original else match["path"]})
        return PlannedCall(tool)
    what = "this request needs a repository or the MCP hub, and " if not available else ""
    raise PlannerCannotAnswer(
        f"{what}no language model is configured or reachable, and Anvyl's built-in planner only "
        f"handles simple requests ({CAPABILITIES}). Configure a model (ANVYL_CONFIG, OPENAI_API_KEY, "
        "ANVYL_GPT_OSS_URL, ...) for anything else."
    )


def write_answer(call: ToolCall, where: str, note: str | None = None) -> str:
    output = call.output.rstrip("\n")
    if call.name == "list_files":
        entries = [line for line in output.splitlines() if line and line != ".git/"]
        listing = "\n".join(f"- {entry}" for entry in entries) or "(empty)"
        body = f"Files in the repository root of {where} ({len(entries)} entries):\n{listing}"
    elif call.name == "git_status":
        body = f"git status of {where}:\n{output}"
    elif call.name == "git_log":
        body = f"Recent commits of {where}:\n{output}"
    elif call.name == "read_file":
        body = f"Contents of {call.arguments['path']}:\n{output}"
    elif call.name == "run_shell":
        body = f"Ran `{call.arguments['command']}`:\n{output}"
    else:
        body = f"{call.name}:\n{output}"
    return f"{body}\n\n{NO_MODEL_NOTE}" + (f"\n{note}" if note else "")
