"""Which MCP servers the orchestrator uses: the configuration file's `mcp_servers`, then the hub's.

When ANVYL_MCP_HUB_URL is set, the hub itself says which servers it mounts (`GET /servers`). A hub
that does not answer at start-up is logged (`mcp.hub_unreachable`); the toolbox asks it again at
every tool refresh, so its tools appear once it is up.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import httpx
import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError

from anvyl.orchestrator.config_file import ConfigFile, ConfigFileError, read_config_file
from anvyl.orchestrator.logging import get_logger

log = get_logger(__name__)
HUB_SERVERS_PATH = "/servers"
HUB_DISCOVERY_TIMEOUT_S = 5.0


class McpServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=40)
    url: str = Field(pattern=r"^https?://")
    token: SecretStr | None = None
    token_env: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)

    def bearer(self, environ: Mapping[str, str]) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value()
        return environ.get(self.token_env) if self.token_env else None


class HubServer(BaseModel):
    """One entry of the hub's `GET /servers`: `path` is relative to the hub's base URL."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=40)
    path: str = Field(pattern=r"^/")


_HUB_LISTING = TypeAdapter(list[HubServer])


class HubDiscoveryError(Exception):
    """The hub did not say which servers it mounts (down, wrong token, not a hub)."""


class Hub(BaseModel):
    """The MCP hub named by ANVYL_MCP_HUB_URL (and its token, ANVYL_MCP_HUB_TOKEN)."""

    url: str
    token: SecretStr | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Hub | None:
        url = environ.get("ANVYL_MCP_HUB_URL")
        if not url:
            return None
        token = environ.get("ANVYL_MCP_HUB_TOKEN")
        return cls(url=url.rstrip("/"), token=SecretStr(token) if token else None)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.get_secret_value()}"} if self.token else {}

    def _servers(self, response: httpx.Response) -> list[McpServerConfig]:
        if response.status_code in (401, 403):
            raise HubDiscoveryError(
                f"HTTP {response.status_code}: check ANVYL_MCP_HUB_TOKEN against the hub's token"
            )
        if response.status_code != 200:
            raise HubDiscoveryError(f"HTTP {response.status_code} from {response.request.url}")
        try:
            listed = _HUB_LISTING.validate_json(response.content)
        except ValidationError as exc:
            raise HubDiscoveryError(f"not a hub's server list: {exc.errors()[0]['msg']}") from None
        return [
            McpServerConfig(name=s.name, url=f"{self.url}{s.path}", token=self.token)
            for s in listed
        ]

    def discover(self, timeout_s: float = HUB_DISCOVERY_TIMEOUT_S) -> list[McpServerConfig]:
        """Ask the hub which servers it mounts (blocking: used once, at start-up)."""
        try:
            with httpx.Client(timeout=timeout_s) as http:
                response = http.get(f"{self.url}{HUB_SERVERS_PATH}", headers=self._headers())
        except httpx.HTTPError as exc:
            raise HubDiscoveryError(describe_error(exc)) from exc
        return self._servers(response)

    async def discover_async(
        self, timeout_s: float = HUB_DISCOVERY_TIMEOUT_S
    ) -> list[McpServerConfig]:
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as http:
                response = await http.get(f"{self.url}{HUB_SERVERS_PATH}", headers=self._headers())
        except httpx.HTTPError as exc:
            raise HubDiscoveryError(describe_error(exc)) from exc
        return self._servers(response)


def hub_unreachable(hub: Hub, exc: HubDiscoveryError) -> None:
    log.warning(
        "mcp.hub_unreachable",
        url=f"{hub.url}{HUB_SERVERS_PATH}",
        error=str(exc),
        detail="running without the hub's tools for now; the hub is asked again at each "
        "tool refresh",
    )


def load_mcp_servers(
    source: ConfigFile | Path | None, environ: Mapping[str, str]
) -> list[McpServerConfig]:
    """The configuration file's ``mcp_servers``, then the hub's (ANVYL_MCP_HUB_URL) whose names
    the file does not use. Asks the hub (blocking, with a timeout): call it off the event loop."""
    file = read_config_file(source) if isinstance(source, Path) else source
    servers: list[McpServerConfig] = []
    entries = (file.section("mcp_servers") if file is not None else None) or []
    if file is not None and not isinstance(entries, list):
        raise ConfigFileError(f"{file.where(('mcp_servers',))}: mcp_servers must be a list")
    for index, item in enumerate(entries):
        try:
            servers.append(McpServerConfig.model_validate(item))
        except ValidationError as exc:
            assert file is not None  # entries come from the file
            where = file.describe(exc, ("mcp_servers", index))
            raise ConfigFileError(f"invalid MCP server:\n  {where}") from None
    hub = Hub.from_env(environ)
    if hub is not None:
        try:
            discovered = hub.discover()
        except HubDiscoveryError as exc:
            hub_unreachable(hub, exc)
            return servers
        taken = {s.name for s in servers}
        servers += [s for s in discovered if s.name not in taken]
    return servers


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in exc.exceptions)
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {exc.request.url}"
    return str(exc) or type(exc).__name__
