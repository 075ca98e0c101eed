"""Shared pieces of the hub's servers: the table row, tool specs and policy-aware registration."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from anvyl.mcp_hub.audit import ToolCallMiddleware
from anvyl.mcp_hub.base_settings import BaseHubSettings

S = TypeVar("S", bound=BaseHubSettings)
T = TypeVar("T")
MCP_SUBPATH = "/mcp"  # Each server's streamable-HTTP endpoint, under its mount path.


class ServerTools(Protocol):
    """The object behind a server's tools; the hub closes it when it shuts down."""

    @property
    def instructions(self) -> str:
        """What the MCP server tells clients about itself."""
        ...

    def tool_specs(self) -> list["ToolSpec"]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class HubServer(Generic[S]):
    """One row of the server table: mounted at `path`, its `tools` built from `settings`."""

    name: str
    description: str
    settings: type[S]
    tools: Callable[[S], ServerTools]

    def __post_init__(self) -> None:
        # The tool allow-list (ANVYL_MCP_HUB_<NAME>_TOOLS) is found by this field name.
        if f"{self.name}_tools" not in self.settings.model_fields:
            raise TypeError(f"{self.settings.__name__} needs a `{self.name}_tools` field")

    @property
    def mount_path(self) -> str:
        return f"/{self.name}"

    @property
    def path(self) -> str:
        """The MCP endpoint, relative to the hub's base URL."""
        return f"{self.mount_path}{MCP_SUBPATH}"

    def create(self, settings: S) -> tuple[MCPServer, ServerTools]:
        """The MCP server with the tools that policy allows, and the object behind them."""
        tools = self.tools(settings)
        return build_mcp_server(self.name, tools.instructions, tools.tool_specs(), settings), tools


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its function and the truthful hints clients use to decide on approval."""

    function: Callable[..., Any]
    title: str
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool = False

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(
            title=self.title,
            read_only_hint=self.read_only,
            # The spec says destructive/idempotent only mean something for non-read-only tools,
            # but stating them explicitly avoids clients falling back to "destructive" defaults.
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )


def withheld_reason(spec: ToolSpec, server_name: str, settings: BaseHubSettings) -> str | None:
    """Why policy withholds this tool, or None when it is available."""
    if settings.read_only and not spec.read_only:
        return "the hub runs in read-only mode and this tool changes state"
    allow_list = settings.tool_allow_list(server_name)
    if allow_list is not None and spec.name not in allow_list:
        env_name = f"ANVYL_MCP_HUB_{server_name.upper()}_TOOLS"
        return f"it is not in the {server_name} tool allow-list ({env_name})"
    return None


def build_mcp_server(
    server_name: str,
    instructions: str,
    tool_specs: Sequence[ToolSpec],
    settings: BaseHubSettings,
) -> MCPServer:
    withheld: dict[str, str] = {}
    available = [
        spec for spec in tool_specs if withheld_reason(spec, server_name, settings) is None
    ]
    for spec in tool_specs:
        reason = withheld_reason(spec, server_name, settings)
        if reason is not None:
            withheld[spec.name] = reason
    server: MCPServer = MCPServer(
        name=f"anvyl-{server_name}",
        instructions=instructions,
        version="0.1.0",
        # The SDK logs every session at INFO through rich; the hub's audit log covers calls.
        log_level="WARNING",
        middleware=[ToolCallMiddleware(server_name, withheld)],
    )
    for spec in available:
        server.add_tool(
            spec.function,
            name=spec.name,
            title=spec.title,
            description=(spec.function.__doc__ or "").strip() or None,
            annotations=spec.annotations,
            structured_output=True,
        )
    return server


async def run_blocking(function: Callable[[], T], timeout_s: float, timeout_message: str) -> T:
    """Run a blocking call in a thread, bounded: it may hang (a dead mount, a slow resolver, a
    daemon), and the event loop serves every other client meanwhile."""
    try:
        with anyio.fail_after(timeout_s):
            return await anyio.to_thread.run_sync(function, abandon_on_cancel=True)
    except TimeoutError as exc:
        raise ToolError(timeout_message) from exc
