"""`HubSettings`: the shared settings plus every server's own, composed from the server table.

Adding a server to `anvyl.mcp_hub.servers.SERVERS` adds its settings class here too, so its
variables (`ANVYL_MCP_HUB_<NAME>_TOOLS`, ...) are read without touching this file.
"""

from typing import cast

from pydantic import Field, create_model, field_validator

from anvyl.mcp_hub.base_settings import BaseHubSettings, CommaList, is_loopback_host
from anvyl.mcp_hub.servers import SERVER_NAMES, SERVERS
from anvyl.mcp_hub.servers.infra import DEFAULT_COMMAND_ALLOW_LIST

__all__ = ["DEFAULT_COMMAND_ALLOW_LIST", "HubSettings", "is_loopback_host"]


class _ServerSelection(BaseHubSettings):
    enabled_servers: CommaList = Field(default_factory=lambda: list(SERVER_NAMES))

    @field_validator("enabled_servers")
    @classmethod
    def _known_servers(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SERVER_NAMES))
        if unknown:
            raise ValueError(f"unknown servers {unknown}; known: {list(SERVER_NAMES)}")
        return value


# One class inheriting the selection and every server's settings class (each a BaseHubSettings),
# so `HubSettings(docker_url=...)` and `ANVYL_MCP_HUB_DOCKER_URL` work as they always did.
HubSettings = cast(
    "type[_ServerSelection]",
    create_model(
        "HubSettings",
        __base__=(_ServerSelection, *dict.fromkeys(server.settings for server in SERVERS)),
        __module__=__name__,
        __doc__="Every setting of the hub: the shared ones and each mounted server's own.",
    ),
)
