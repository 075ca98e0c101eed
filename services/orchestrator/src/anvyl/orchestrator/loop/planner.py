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
    "containers, host resources, host info; with known hosts: list hosts, resources of all hosts"
)
# "... of all hosts": what every host is asked (each answers from its own hub), by what is asked for.
_ALL_HOSTS = re.compile(
    r"\b(all\s+(the\s+|of\s+the\s+|known\s+)*(hosts|machines)|"
    r"(every|each)\s+(known\s+)?(host|machine))\b"
)
_HOST_QUESTIONS = [
    (re.compile(r"\b(resources?|usage|load|cpu|memory|disk)\b"), "show host resources"),
    (re.compile(r"\b(containers?|docker\s+ps)\b"), "show containers"),
    (re.compile(r"\b(info|information|details)\b"), "show host info"),
]


class PlannerCannotAnswer(ValueError):
    """The request needs a language model and none is configured or reachable."""


@dataclass(frozen=True)
class PlannedCall:
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


_FILE_TOKEN = r"(?P<path>[\w.-]*[\w-]\.[\w]+|[\w.-]+(?:/[\w.-]+)+)"
_RUN = re.compile(r"\b(run|execute)\b[^`]*`(?P<command>[^`]+)`", re.IGNORECASE)

# Verbs that ask for a change. The planner only reads, so a request with one of them is refused
# before any listing is matched: "create a container" must never be answered with a container list.
_CHANGE_VERB_WORDS = """
    add alter append apply assign attach back backup boot bring build bump cancel change checkout
    chmod chown clean clear clone commit compile configure copy cp create delete deploy destroy
    detach disable downgrade download drop edit enable erase execute expose fix flush format
    generate grant halt implement import init insert install kill launch make merge migrate
    mkdir modify mount move mv patch pause power provision prune publish pull purge push
    reboot rebase rebuild recreate redeploy refactor register reinstall reload remove rename
    replace reset resize restart restore resume revert revoke rm rmdir roll rollback run save
    scale schedule set setup shut shutdown spawn spin start stash stop switch sync tag tear
    terminate touch truncate turn uninstall unmount unregister update upgrade upload wipe write
"""
_CHANGE_VERBS = frozenset(_CHANGE_VERB_WORDS.split())
# A word before a verb's form that makes it a noun: "the last commit", "the new build".
_NOUN_MARKER_WORDS = """
    a an the this that these those my your our its their his her last latest recent first next
    previous current each every any no one which what whose of in new old
"""
_NOUN_MARKERS = frozenset(_NOUN_MARKER_WORDS.split())
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# Words that ask to be shown something; a request without one (or a command such as `git status`)
# is not a plain read request.
_READ_CUES = re.compile(
    r"\b(list|ls|show|display|print|read|cat|view|see|check|tell|what|what's|whats|which|how|"
    r"is|are|any|do|does|did|has|have|was|were|describe|inspect|report|git\s+status|git\s+log|"
    r"docker\s+ps)\b"
)


@dataclass(frozen=True)
class _Intent:
    pattern: re.Pattern[str]
    tool: str
    needs_cue: bool = True  # False: the pattern holds its own read verb


_INTENTS: list[_Intent] = [
    _Intent(re.compile(r"^\s*(list|show)\s+(me\s+)?(the\s+|all\s+|known\s+|other\s+)*hosts\b"
                       r"(\s+and\s+their\s+status)?[\s.?!]*$"), "hosts__list_hosts"),
    _Intent(re.compile(r"\b(containers?|docker\s+ps)\b"), "docker__list_containers"),
    _Intent(re.compile(r"\b(host|system|machine)\b.*\b(resources?|usage|load|cpu|memory|disk)\b|\bresource usage\b|"
                       r"\b(cpu|memory|disk|load)\b.*\b(host|system|machine)\b"),
            "infra__get_host_resources"),
    _Intent(re.compile(r"\b(host|system|machine)\s+(info|information|details)\b"), "infra__get_host_info"),
    _Intent(re.compile(r"\bgit\s+status\b|\b(uncommitted|pending)\s+changes\b|\bwhat\s+changed\b"), "git_status"),
    _Intent(re.compile(r"\bgit\s+log\b|\b(recent|last|latest)\s+commits?\b|\bcommit\s+history\b"), "git_log"),
    _Intent(re.compile(rf"\b(show|read|cat|print|display|open|view)\b(\s+(me|the|file|contents\s+of))*\s+{_FILE_TOKEN}"),
            "read_file", needs_cue=False),
    _Intent(re.compile(r"\b(list|show|what|which)\b.*\b(files?|contents|directory|folder)\b|^\s*ls\b"),
            "list_files", needs_cue=False),
]  # fmt: skip


def change_verb(text: str) -> str | None:
    """The first word of `text` (lower case) that asks for a change, if any."""
    previous = ""
    for match in _WORD.finditer(text):
        word = match.group(0)
        if word in _CHANGE_VERBS and previous not in _NOUN_MARKERS:
            return word
        previous = word
    return None


def _refusal(available: Collection[str], reason: str = "") -> PlannerCannotAnswer:
    what = "this request needs a repository or the MCP hub, and " if not available else ""
    return PlannerCannotAnswer(
        f"{reason}{what}no language model is configured or reachable, and Anvyl's built-in planner "
        f"only handles simple requests ({CAPABILITIES}). Configure a model (ANVYL_CONFIG, "
        "OPENAI_API_KEY, ANVYL_GPT_OSS_URL, ...) for anything else."
    )


def plan(query: str, available: Collection[str]) -> PlannedCall:
    """Map a plain request to one call of an available tool, or say that a model is needed.

    A command in backticks is run as asked; otherwise a request that asks for a change is refused,
    and a read request is matched to the one tool that answers it."""
    if (run := _RUN.search(query)) and "run_shell" in available:
        return PlannedCall("run_shell", {"command": run["command"].strip()})
    text = query.strip().lower()
    # Backticked text is quoted, not asked for ("what does `make clean` do?").
    if verb := change_verb(re.sub(r"`[^`]*`", " ", text)):
        raise _refusal(
            available, f"'{verb}' asks for a change, which the built-in planner does not make: "
        )
    cued = _READ_CUES.search(text) is not None
    if cued and "hosts__broadcast" in available and _ALL_HOSTS.search(text):
        for words, question in _HOST_QUESTIONS:
            if words.search(text):
                return PlannedCall("hosts__broadcast", {"query": question, "include_self": True})
    for intent in _INTENTS:
        match = intent.pattern.search(text)
        if match is None or intent.tool not in available or (intent.needs_cue and not cued):
            continue
        if intent.tool == "read_file":
            # Take the path from the original text: file names are case-sensitive.
            original = re.search(re.escape(match["path"]), query, re.IGNORECASE)
            return PlannedCall(
                intent.tool, {"path": original.group(0) if original else match["path"]}
            )
        return PlannedCall(intent.tool)
    raise _refusal(available)


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
    elif call.name == "hosts__broadcast":
        body = f"Every host asked {call.arguments['query']!r}:\n{output}"
    elif call.name == "run_shell":
        body = f"Ran `{call.arguments['command']}`:\n{output}"
    else:
        body = f"{call.name}:\n{output}"
    return f"{body}\n\n{NO_MODEL_NOTE}" + (f"\n{note}" if note else "")
