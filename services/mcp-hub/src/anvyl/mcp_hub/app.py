"""The hub's Starlette app: one streamable-HTTP MCP server per concern, each under `/<name>/mcp`."""

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
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
from anvyl.mcp_hub.servers.docker import DockerTools, create_docker_server
from anvyl.mcp_hub.servers.infra import InfraTools, create_infra_server
from anvyl.mcp_hub.servers.proxmox import ProxmoxTools, create_proxmox_server
from anvyl.mcp_hub.settings import HubSettings, is_loopback_host

HEALTH_PATH = "/health"
LOOPBACK_HOST_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_BIND_HOSTS = ("0.0.0.0", "::", "")
_HAS_PORT = re.compile(r"(^[^:\[]+|\])(:\d+)$")


@dataclass
class Hub:
    """The built hub: its ASGI app and the MCP servers it mounts, by name."""

    app: Starlette
    servers: dict[str, MCPServer]
    tools: dict[str, InfraTools | DockerTools | ProxmoxTools] = field(default_factory=dict)


def transport_security(settings: HubSettings) -> TransportSecuritySettings:
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


def check_bind_policy(settings: HubSettings) -> None:
    """Without a token the hub may only listen on loopback."""
    if not settings.auth_enabled and not is_loopback_host(settings.host):
        raise UnsafeBindError(
            f"refusing to bind {settings.host} without a token: set ANVYL_MCP_HUB_TOKEN, "
            "or bind a loopback address (127.0.0.1)"
        )


def create_hub(settings: HubSettings | None = None) -> Hub:
    settings = settings or HubSettings()
    check_bind_policy(settings)
    log = get_logger()
    servers: dict[str, MCPServer] = {}
    tools: dict[str, InfraTools | DockerTools | ProxmoxTools] = {}
    closers: list[Callable[[], Awaitable[None]]] = []

    if "infra" in settings.enabled_servers:
        servers["infra"], tools["infra"] = create_infra_server(settings)
    if "docker" in settings.enabled_servers:
        servers["docker"], docker_tools = create_docker_server(settings)
        tools["docker"] = docker_tools

        async def close_docker() -> None:
            docker_tools.close()

        closers.append(close_docker)
    if "proxmox" in settings.enabled_servers:
        servers["proxmox"], proxmox_tools = create_proxmox_server(settings)
        tools["proxmox"] = proxmox_tools
        closers.append(proxmox_tools.aclose)

    security = transport_security(settings)
    routes: list[BaseRoute] = []
    for name, server in servers.items():
        server_app = server.streamable_http_app(
            streamable_http_path="/mcp",
            transport_security=security,
            stateless_http=settings.stateless_http,
            json_response=settings.json_response,
            host=settings.host,
        )
        routes.append(Mount(f"/{name}", app=server_app))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "servers": {name: f"/{name}/mcp" for name in servers},
                "auth": settings.auth_enabled,
                "read_only": settings.read_only,
            }
        )

    routes.insert(0, Route(HEALTH_PATH, health, methods=["GET"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Mounted apps' own lifespans never run, so the parent runs every session manager.
        async with contextlib.AsyncExitStack() as stack:
            for server in servers.values():
                await stack.enter_async_context(server.session_manager.run())
            for closer in closers:
                stack.push_async_callback(closer)
            log.info(
                "hub_started",
                servers=[f"/{name}/mcp" for name in servers],
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
