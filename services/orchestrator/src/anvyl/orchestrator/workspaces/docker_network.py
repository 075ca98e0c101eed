"""Where the docker backend puts a worker when the orchestrator itself runs in a container
(docker-compose): on a Docker network, reached by its container name, as part of the compose project.

The workers get the labels of a one-off container (`docker-compose run`) of the orchestrator's own
service, so `docker-compose down` (1.29 and v2) stops and removes them with the stack; without them
they would outlive it and keep its network from being removed. A repository on the orchestrator's
filesystem (a scratch workspace, say) is mounted from where the daemon sees it: the source of the
orchestrator's own mount that holds it.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import docker
import docker.errors
import requests

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"


def dns_name(container_name: str) -> str:
    """The worker's name on the network: its container name where that is a valid DNS label (at
    most 63 characters), else a prefix of it and a hash (a long instance and workspace id)."""
    if len(container_name) <= 63:
        return container_name
    digest = hashlib.sha256(container_name.encode()).hexdigest()[:16]
    return f"{container_name[:46].rstrip('-.')}-{digest}"


@dataclass(frozen=True)
class OwnContainer:
    """The orchestrator's own container as the daemon describes it (empty outside one)."""

    labels: dict[str, str] = field(default_factory=dict)
    mounts: tuple[tuple[str, str], ...] = ()  # (destination inside, source on the daemon's host)
    found: bool = False
    network_mode: str = ""
    published: tuple[tuple[str, str, str], ...] = ()  # (port/proto, host address, host port)
    gateways: tuple[tuple[str, str], ...] = ()  # (network, its gateway: the host on it)

    def compose_labels(self) -> dict[str, str]:
        """The compose labels a worker of this orchestrator gets; none outside a compose project."""
        project, service = self.labels.get(COMPOSE_PROJECT), self.labels.get(COMPOSE_SERVICE)
        if not project or not service:
            return {}
        return {COMPOSE_PROJECT: project, COMPOSE_SERVICE: service, COMPOSE_ONEOFF: "True"}

    def host_path(self, path: Path) -> Path | None:
        """Where the daemon finds `path` of this container: under the source of the mount that
        holds it (a bind mount's directory or a volume's), or None when no mount does."""
        inside = PurePosixPath(path)
        for destination, source in sorted(self.mounts, key=lambda m: len(m[0]), reverse=True):
            if inside == PurePosixPath(destination) or PurePosixPath(destination) in inside.parents:
                return Path(source) / inside.relative_to(destination)
        return None


def own_container(client: docker.DockerClient, container_id: str | None = None) -> OwnContainer:
    """Docker names a container's host after its id (unless `hostname:` says otherwise)."""
    name = container_id or os.environ.get("HOSTNAME") or socket.gethostname()
    try:
        attrs = client.api.inspect_container(name)
    except (docker.errors.DockerException, requests.RequestException):
        return OwnContainer()  # not in a container of this daemon, or no daemon to ask
    mounts = tuple(
        (m["Destination"], m["Source"]) for m in attrs.get("Mounts") or [] if m.get("Source")
    )
    host_config = attrs.get("HostConfig") or {}
    published = tuple(
        (port, binding.get("HostIp") or "", binding.get("HostPort") or "")
        for port, bindings in (host_config.get("PortBindings") or {}).items()
        for binding in bindings or []
    )
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    gateways = tuple(
        (network, gateway)
        for network, endpoint in networks.items()
        for gateway in (endpoint.get("Gateway"), endpoint.get("IPv6Gateway"))
        if gateway
    )
    return OwnContainer(dict(attrs["Config"].get("Labels") or {}), mounts, found=True,
                        network_mode=host_config.get("NetworkMode") or "", published=published,
                        gateways=gateways)  # fmt: skip
