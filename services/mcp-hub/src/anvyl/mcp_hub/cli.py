"""`anvyl-mcp-hub` command line."""

import sys
from typing import Annotated

import typer
import uvicorn

from anvyl.mcp_hub.app import UnsafeBindError, check_bind_policy, create_hub
from anvyl.mcp_hub.audit import configure_logging, get_logger
from anvyl.mcp_hub.base_settings import is_loopback_host
from anvyl.mcp_hub.settings import HubSettings

cli = typer.Typer(help="Anvyl MCP hub: the MCP servers of its server table over streamable HTTP.")


@cli.callback()
def root() -> None:
    """Anvyl MCP hub."""


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (ANVYL_MCP_HUB_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (ANVYL_MCP_HUB_PORT)")] = None,
    read_only: Annotated[
        bool | None, typer.Option("--read-only/--read-write", help="Withhold state-changing tools")
    ] = None,
    log_json: Annotated[bool, typer.Option(help="Log JSON lines instead of console text")] = False,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request (uvicorn)")] = False,
) -> None:
    """Serve every enabled MCP server under /<name>/mcp, plus /servers and /health."""
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if read_only is not None:
        overrides["read_only"] = read_only
    settings = HubSettings(**overrides)  # type: ignore[arg-type]
    configure_logging(json_output=log_json or settings.log_json)
    log = get_logger()
    try:
        check_bind_policy(settings)
    except UnsafeBindError as exc:
        log.error("bind_refused", reason=str(exc))
        raise typer.Exit(code=2) from exc
    if not settings.auth_enabled:
        log.warning("auth_off", reason="ANVYL_MCP_HUB_TOKEN is not set", host=settings.host)
    if not is_loopback_host(settings.host) and not settings.allowed_hosts:
        log.warning(
            "no_allowed_hosts",
            reason="only loopback and bind-address Host headers are accepted; set "
            "ANVYL_MCP_HUB_ALLOWED_HOSTS to the names clients use to reach the hub",
        )
    hub = create_hub(settings)
    uvicorn.run(
        hub.app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=access_log,
        timeout_graceful_shutdown=5,
    )


def main() -> None:
    sys.exit(cli())
