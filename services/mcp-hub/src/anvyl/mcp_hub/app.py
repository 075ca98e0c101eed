"""The hub's Starlette app: every enabled server of the table under `/<name>/mcp`, plus
`GET /servers` (which of them are mounted, behind the token) and an open `GET /health`."""

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from anvyl.mcp_hub.audit import get_logger
from anvyl.mcp_hub.auth import BearerTokenMiddleware
from anvyl.mcp_hub.base_settings import BaseHubSettings, is_loopback_host
from anvyl.mcp_hub.servers import SERVERS
from anvyl.mcp_hub.servers.base import MCP_SUBPATH, HubServer, ServerTools
from anvyl.mcp_hub.settings import HubSettings

HEALTH_PATH = "/health"
SERVERS_PATH = "/servers"
LOOPBACK_HOST_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_BIND_HOSTS = ("0.0.0.0", "::", "")
_HAS_PORT = re.compile(r"(^[^:\[]+|\])(:\d+)$")


@dataclass
class Hub:
    """The built hub: its ASGI app and the MCP servers it mounts, by name."""

    app: Starlette
    servers: dict[str, MCPServer]
    tools: dict[str, ServerTools] = field(default_factory=dict)


def transport_security(settings: BaseHubSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection: only the configured host names (any port) are accepted."""
    names: list[str] = list(LOOPBACK_HOST_NAMES)
    if settings.host not in _WILDCARD_BIND_HOSTS:
        names.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    allowed_hosts: list[str] = []
    allowed_origins: list[str] = []
    for name in [*names, *settings.allowed_hosts]:
        if name.endswith(":*") or _HAS_PORT.search(name):
            allowed_hosts.append(name)  # Already carries a port (or a port wildcard).
            allowed_origins.extend((f"http://{name}", f"https://{name}"))
            continue
        allowed_hosts.extend((name, f"{name}:*"))
        allowed_origins.extend(
            (f"http://{name}", f"http://{name}:*", f"https://{name}", f"https://{name}:*")
        )
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(allowed_hosts)),
        allowed_origins=list(dict.fromkeys(allowed_origins)),
    )


class UnsafeBindError(ValueError):
    pass


def check_bind_policy(settings: BaseHubSettings) -> None:
    """Without a token the hub may only listen on loopback."""
    if not settings.auth_enabled and not is_loopback_host(settings.host):
        raise UnsafeBindError(
            f"refusing to bind {settings.host} without a token: set ANVYL_MCP_HUB_TOKEN, "
            "or bind a loopback address (127.0.0.1)"
        )


def create_hub(settings: BaseHubSettings | None = None) -> Hub:
    settings = settings or HubSettings()
    check_bind_policy(settings)
    log = get_logger()
    mounted: list[HubServer[BaseHubSettings]] = [
        server for server in SERVERS if server.name in settings.enabled_servers
    ]
    servers: dict[str, MCPServer] = {}
    tools: dict[str, ServerTools] = {}
    for entry in mounted:
        servers[entry.name], tools[entry.name] = entry.create(settings)

    security = transport_security(settings)
    routes: list[BaseRoute] = []
    for entry in mounted:
        server_app = servers[entry.name].streamable_http_app(
            streamable_http_path=MCP_SUBPATH,
            transport_security=security,
            stateless_http=settings.stateless_http,
            json_response=settings.json_response,
            host=settings.host,
        )
        routes.append(Mount(entry.mount_path, app=server_app))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "servers": {entry.name: entry.path for entry in mounted},
                "auth": settings.auth_enabled,
                "read_only": settings.read_only,
            }
        )

    async def list_servers(request: Request) -> JSONResponse:
        # What a client needs to connect: each path is relative to the hub's base URL.
        return JSONResponse(
            [
                {"name": entry.name, "path": entry.path, "description": entry.description}
                for entry in mounted
            ]
        )

    routes[:0] = [
        Route(HEALTH_PATH, health, methods=["GET"]),
        Route(SERVERS_PATH, list_servers, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Mounted apps' own lifespans never run, so the parent runs every session manager.
        async with contextlib.AsyncExitStack() as stack:
            for server in servers.values():
                await stack.enter_async_context(server.session_manager.run())
            for server_tools in tools.values():
                stack.push_async_callback(server_tools.aclose)
            log.info(
                "hub_started",
                servers=[entry.path for entry in mounted],
                auth="on" if settings.auth_enabled else "off",
                read_only=settings.read_only,
                allowed_hosts=security.allowed_hosts,
            )
            yield

    token = settings.token.get_secret_value() if settings.auth_enabled and settings.token else None
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(BearerTokenMiddleware, token=token, open_paths=[HEALTH_PATH])],
    )
    return Hub(app=app, servers=servers, tools=tools)
