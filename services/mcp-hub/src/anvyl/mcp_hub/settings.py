"""Hub settings, read from `ANVYL_MCP_HUB_*` environment variables (and a `.env` file)."""

import ipaddress
import json
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SERVER_NAMES: tuple[str, ...] = ("infra", "docker", "proxmox")

# Commands that only read state whatever their arguments (the policy checks argv[0] only, so
# `cat` (any file), `hostname`/`date` (set as root) and `ip` (reconfigures) are left out).
DEFAULT_COMMAND_ALLOW_LIST: tuple[str, ...] = (
    "uptime",
    "uname",
    "df",
    "free",
    "whoami",
    "id",
    "ls",
    "echo",
    "ps",
)


def _split_list(value: object) -> object:
    """Accept `a,b,c` as well as a JSON list, so env vars stay easy to write."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]
OptionalCommaList = Annotated[list[str] | None, NoDecode]


class HubSettings(BaseSettings):
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

    # Per-server tool allow-lists; None means every tool of that server.
    infra_tools: OptionalCommaList = None
    docker_tools: OptionalCommaList = None
    proxmox_tools: OptionalCommaList = None
    enabled_servers: CommaList = Field(default_factory=lambda: list(SERVER_NAMES))

    # execute_command policy: argv[0] must be in this list (by name or absolute path).
    command_allow_list: CommaList = Field(default_factory=lambda: list(DEFAULT_COMMAND_ALLOW_LIST))
    command_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    command_output_limit_bytes: int = Field(default=64_000, gt=0)

    docker_url: str | None = Field(
        default=None, description="Docker daemon URL; unset uses DOCKER_HOST or the local socket."
    )
    docker_timeout_s: float = Field(default=30.0, gt=0)

    proxmox_url: str | None = Field(default=None, description="e.g. https://pve.example:8006")
    proxmox_token_id: str | None = Field(default=None, description="user@realm!tokenname")
    proxmox_token_secret: SecretStr | None = None
    proxmox_verify_tls: bool = True
    proxmox_timeout_s: float = Field(default=15.0, gt=0)

    log_json: bool = False

    @field_validator(
        "allowed_hosts",
        "command_allow_list",
        "enabled_servers",
        "infra_tools",
        "docker_tools",
        "proxmox_tools",
        mode="before",
    )
    @classmethod
    def _parse_lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("enabled_servers")
    @classmethod
    def _known_servers(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SERVER_NAMES))
        if unknown:
            raise ValueError(f"unknown servers {unknown}; known: {list(SERVER_NAMES)}")
        return value

    def tool_allow_list(self, server_name: str) -> list[str] | None:
        allow_list: list[str] | None = getattr(self, f"{server_name}_tools")
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
