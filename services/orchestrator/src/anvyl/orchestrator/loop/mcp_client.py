"""The orchestrator as an MCP client: tools of the configured MCP servers, prefixed `server__tool`.

Which servers: mcp_servers.py (the configuration file's, then the hub's). Each server has one long-lived connection task that owns
the SDK session (anyio cancel scopes must be left in the task that entered them); calls are handed
to it and run concurrently inside the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from mcp.types import Tool as McpTool

from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.loop.mcp_servers import (
    Hub,
    HubDiscoveryError,
    McpServerConfig,
    describe_error,
    hub_unreachable,
    load_mcp_servers,
)
from anvyl.orchestrator.loop.tools import Tool, ToolError

__all__ = ["McpConnection", "McpServerConfig", "McpToolbox", "load_mcp_servers"]

log = get_logger(__name__)
SEPARATOR = "__"
_CONNECT_TIMEOUT_S = 10.0

SessionCall = Callable[[ClientSession], Awaitable[Any]]


class McpConnection:
    """One MCP server: a session kept open by a connection task, reopened after a failure."""

    def __init__(self, config: McpServerConfig, environ: Mapping[str, str]) -> None:
        self.config = config
        self._bearer = config.bearer(environ)
        self._queue: asyncio.Queue[tuple[SessionCall, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def request(self, call: SessionCall, timeout_s: float | None = None) -> Any:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._connection(), name=f"mcp-{self.config.name}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((call, future))
        try:
            return await asyncio.wait_for(
                asyncio.shield(future), timeout_s or self.config.timeout_s
            )
        except TimeoutError:
            future.cancel()
            raise ToolError(f"MCP server {self.config.name} did not answer within "
                            f"{timeout_s or self.config.timeout_s:g}s") from None  # fmt: skip

    async def _connection(self) -> None:
        headers = {"Authorization": f"Bearer {self._bearer}"} if self._bearer else {}
        running: set[asyncio.Task[None]] = set()
        http_error: list[int] = []

        async def remember_errors(response: httpx2.Response) -> None:
            # The SDK reports only "an error response": keep the status to say which.
            if response.status_code >= 400:
                http_error.append(response.status_code)

        timeout = httpx2.Timeout(self.config.timeout_s, connect=_CONNECT_TIMEOUT_S)
        try:
            async with (
                httpx2.AsyncClient(headers=headers, timeout=timeout,
                                   event_hooks={"response": [remember_errors]}) as http,
                streamable_http_client(self.config.url, http_client=http) as streams,
                ClientSession(streams[0], streams[1]) as session,
            ):  # fmt: skip
                await asyncio.wait_for(session.initialize(), _CONNECT_TIMEOUT_S)
                while True:
                    call, future = await self._queue.get()
                    task = asyncio.create_task(self._serve(session, call, future))
                    running.add(task)
                    task.add_done_callback(running.discard)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            reason = describe_error(exc)
            if http_error:
                hint = ": check the server's token" if http_error[-1] in (401, 403) else ""
                reason = f"HTTP {http_error[-1]}{hint} ({reason})"
            log.warning("mcp.connection_failed", server=self.config.name, error=reason)
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(
                        ToolError(f"MCP server {self.config.name} unavailable: {reason}")
                    )
        finally:
            for task in running:
                task.cancel()

    @staticmethod
    async def _serve(
        session: ClientSession, call: SessionCall, future: asyncio.Future[Any]
    ) -> None:
        try:
            result = await call(session)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def _text_of(result: CallToolResult) -> str:
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return json.dumps(result.structured_content)
    return ""


class McpToolbox:
    """Every configured MCP server's tools, discovered at start-up and refreshed periodically."""

    def __init__(
        self, servers: list[McpServerConfig], environ: Mapping[str, str] | None = None
    ) -> None:
        self._environ = environ if environ is not None else os.environ
        self.connections = {s.name: McpConnection(s, self._environ) for s in servers}
        self._tools: dict[str, list[McpTool]] = {}
        self.errors: dict[str, str] = {}
        self._refresher: asyncio.Task[None] | None = None
        # A hub that did not answer at start-up (none of `servers` under its URL) is asked again.
        self._hub = Hub.from_env(self._environ)
        if self._hub is not None and any(s.url.startswith(f"{self._hub.url}/") for s in servers):
            self._hub = None

    async def _ask_hub(self) -> None:
        if self._hub is None:
            return
        try:
            discovered = await self._hub.discover_async()
        except HubDiscoveryError as exc:
            hub_unreachable(self._hub, exc)
            return
        log.info("mcp.hub_discovered", servers=[s.name for s in discovered])
        for config in discovered:
            if config.name not in self.connections:
                self.connections[config.name] = McpConnection(config, self._environ)
        self._hub = None

    async def refresh(self) -> None:
        await self._ask_hub()

        async def discover(name: str, connection: McpConnection) -> None:
            try:
                listed = await connection.request(
                    lambda s: s.list_tools(), timeout_s=_CONNECT_TIMEOUT_S
                )
            except Exception as exc:
                self.errors[name] = str(exc)
                log.warning("mcp.discovery_failed", server=name, error=str(exc))
                return
            self._tools[name] = list(listed.tools)
            self.errors.pop(name, None)

        await asyncio.gather(*(discover(n, c) for n, c in self.connections.items()))

    async def start(self, refresh_every_s: float = 300.0) -> None:
        await self.refresh()
        if self.connections or self._hub is not None:
            self._refresher = asyncio.create_task(
                self._refresh_loop(refresh_every_s), name="mcp-refresh"
            )

    async def _refresh_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.refresh()

    def tools(self) -> list[Tool]:
        found = []
        for server, tools in self._tools.items():
            for tool in tools:
                hints = tool.annotations
                read_only = bool(hints and hints.read_only_hint)
                # MCP's default for a tool that is not read-only is "destructive": assume the worst.
                destructive = not read_only and (
                    hints is None or hints.destructive_hint is not False
                )
                found.append(Tool(
                    name=f"{server}{SEPARATOR}{tool.name}", description=tool.description or tool.name,
                    parameters=tool.input_schema or {"type": "object", "properties": {}},
                    read_only=read_only, destructive=destructive,
                    run=self._caller(server, tool.name), source=server,
                ))  # fmt: skip
        return found

    def _caller(self, server: str, tool: str) -> Callable[[dict[str, Any]], Awaitable[str]]:
        async def run(arguments: dict[str, Any]) -> str:
            try:
                result: CallToolResult = await self.connections[server].request(
                    lambda session: session.call_tool(tool, arguments)
                )
            except ToolError:
                raise
            except Exception as exc:  # the SDK's and the transport's errors: the server is at fault
                raise ToolError(f"{server}{SEPARATOR}{tool}: MCP server {server} unavailable: "
                                f"{describe_error(exc)}") from exc  # fmt: skip
            if result.is_error:
                raise ToolError(f"{server}{SEPARATOR}{tool} failed: {_text_of(result)}")
            return _text_of(result)

        return run

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        for connection in self.connections.values():
            await connection.close()
