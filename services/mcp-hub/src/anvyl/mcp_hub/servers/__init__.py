"""The hub's servers: one module each, and THE table of them.

The app mounts, `HubSettings` reads the settings of, `GET /servers` lists and the README
describes exactly these rows. A new server is a module here plus one row below.
"""

from typing import Any

from anvyl.mcp_hub.servers.base import HubServer
from anvyl.mcp_hub.servers.docker import DockerSettings, DockerTools
from anvyl.mcp_hub.servers.infra import InfraSettings, InfraTools
from anvyl.mcp_hub.servers.proxmox import ProxmoxSettings, ProxmoxTools

SERVERS: tuple[HubServer[Any], ...] = (  # Any: each row has its own settings class
    HubServer("infra", "host facts and commands", InfraSettings, InfraTools),
    HubServer("docker", "the Docker daemon next to the hub", DockerSettings, DockerTools),
    HubServer("proxmox", "Proxmox VE discovery (its /api2/json API)", ProxmoxSettings,
              ProxmoxTools),
)  # fmt: skip
SERVER_NAMES: tuple[str, ...] = tuple(server.name for server in SERVERS)
