"""This orchestrator's Agent Card: one default skill (a task on the default model chain) and one
skill per named agent; how to authenticate; where the JSON-RPC endpoint is."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_1_0, TransportProtocol

from anvyl.orchestrator.a2a.routes import RPC_PATH

DEFAULT_SKILL = "anvyl"
BEARER_SCHEME = "bearer"
_AUTH_HELP = (
    "Authorization: Bearer <key>, with a key of the orchestrator's ANVYL_API_KEYS (the card "
    "itself is public)"
)


def _version() -> str:
    try:
        return version("anvyl-orchestrator")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def _agent_skill(name: str) -> AgentSkill:
    return AgentSkill(
        id=name,
        name=name,
        description=f"The named agent {name!r}: its own workspace, models, prompt and tool "
        f'policy. Pick it with the message metadata {{"agent": "{name}"}}.',
        tags=["agent", name],
        examples=["List files in current directory"],
    )


def build_card(base_url: str, agent_names: list[str], *, auth: bool, public: bool) -> AgentCard:
    """The card for clients reaching this orchestrator at `base_url`. With auth on, the public
    card names no agents (they are in the extended card, GetExtendedAgentCard with a key)."""
    skills = [
        AgentSkill(
            id=DEFAULT_SKILL,
            name="Anvyl task",
            description="Runs the query as an Anvyl task (POST /orchestrate): the agent loop with "
            "the workspace tools and the MCP hub's host tools, on the configured models (the "
            "built-in planner without one). Message metadata may carry the other fields of POST "
            "/orchestrate: repo_url, workspace_id, agent, model, timeout_s, files, policy.",
            tags=["code", "infrastructure", "docker"],
            examples=[
                "List files in current directory",
                "show git status",
                "Show resource usage for this host",
            ],
        )
    ]
    if not (auth and public):
        skills += [_agent_skill(name) for name in agent_names]
    card = AgentCard(
        name="Anvyl",
        description="Self-hosted orchestrator for agents that work on code repositories and "
        "infrastructure. A message is a task; its result is the task's `result` artifact.",
        supported_interfaces=[
            AgentInterface(
                url=base_url.rstrip("/") + RPC_PATH,
                protocol_binding=TransportProtocol.JSONRPC,
                protocol_version=PROTOCOL_VERSION_1_0,
            )
        ],
        version=_version(),
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=False, extended_agent_card=auth
        ),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=skills,
    )
    card.security_schemes[BEARER_SCHEME].CopyFrom(
        SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(
            scheme="Bearer", description=_AUTH_HELP if auth else "auth is off (loopback only)",
        ))
    )  # fmt: skip
    if auth:
        requirement = SecurityRequirement()
        requirement.schemes[BEARER_SCHEME].CopyFrom(StringList())
        card.security_requirements.append(requirement)
    return card
