"""The settings every hub server shares, read from `ANVYL_MCP_HUB_*` variables (and `.env`).

Each server adds its own fields in its module (`InfraSettings`, `DockerSettings`, ...);
`anvyl.mcp_hub.settings.HubSettings` is all of them together, built from the server table.
"""

import ipaddress
import json
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def split_list(value: object) -> object:
    """Accept `a,b,c` as well as a JSON list, so env vars stay easy to write."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


# NoDecode: pydantic-settings would otherwise insist on JSON for list-typed variables.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
OptionalCommaList = Annotated[list[str] | None, NoDecode, BeforeValidator(split_list)]


class BaseHubSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ANVYL_MCP_HUB_", env_file=".env", extra="ignore", populate_by_name=True
    )

    token: SecretStr | None = Field(
        default=None, description="Bearer token clients must send; unset means auth is off."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    allowed_hosts: CommaList = Field(
        default_factory=list,
        description="Extra Host header values accepted (DNS-rebinding protection); "
        "the bind host and loopback names are always allowed. `name` allows any port.",
    )
    read_only: bool = False
    # Plain JSON responses measured faster than SSE streams (bench/mcp_hub_bench.py); no hub
    # tool streams progress, so nothing is lost. Sessions stay on: they carry the client's
    # identity into the audit log; stateless mode was not reliably faster.
    stateless_http: bool = False
    json_response: bool = True
    # Which servers of the table are mounted; the full HubSettings defaults it to all of them.
    enabled_servers: CommaList = Field(default_factory=list)
    log_json: bool = False

    def tool_allow_list(self, server_name: str) -> list[str] | None:
        """The server's `<name>_tools` setting: None means every tool of that server."""
        allow_list: list[str] | None = getattr(self, f"{server_name}_tools", None)
        return allow_list

    @property
    def auth_enabled(self) -> bool:
        return self.token is not None and bool(self.token.get_secret_value())


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
