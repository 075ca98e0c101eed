"""Who may call the API when it has no keys: this machine only.

On a bare host that is simply the bind address: without ANVYL_API_KEYS `anvyl serve` listens on
loopback. In a container (docker-compose) the server must listen on the container's address, so the
same promise takes two checks, both made against the Docker API at start-up:

- every port of the container is published on a loopback address of the host (127.0.0.1:8080, as
  compose does by default), and the container does not share the host's network;
- a request is answered only when it comes through that published port or from inside the
  container. Docker forwards the port to the container's address on one of its networks (which one
  is Docker's choice: the workers' network, as often as not), so the request's peer is the gateway
  of that network: the host itself. A worker has an address of its own on that network and no
  capability (cap_drop ALL) to forge another, so a worker, the hub or any other container is refused.

Anything else (another address, no Docker socket to ask, not a container of this daemon) refuses to
start without keys, saying what to set.
"""

from __future__ import annotations

import docker
import docker.errors

from anvyl.orchestrator.settings import Settings, is_loopback
from anvyl.orchestrator.workspaces.docker_network import own_container

LOOPBACK_PEERS = frozenset({"127.0.0.1", "::1"})
_DOCKER_TIMEOUT_S = 10


class NotLocal(RuntimeError):
    """The API cannot be kept to this machine without keys: the message says why and what to do."""


def local_peers(settings: Settings) -> frozenset[str] | None:
    """The peer addresses an API without keys answers, or None when no filter is needed (there
    are keys, or the server binds a loopback address). Raises NotLocal when neither holds."""
    if settings.api_keys or is_loopback(settings.host):
        return None
    refuse = (f"refusing to listen on {settings.host} without API keys: set ANVYL_API_KEYS "
              "(comma-separated) or bind 127.0.0.1")  # fmt: skip
    docker_url = getattr(settings.workspace, "docker_url", None)
    try:
        client = (docker.DockerClient(base_url=docker_url, timeout=_DOCKER_TIMEOUT_S) if docker_url
                  else docker.from_env(timeout=_DOCKER_TIMEOUT_S))  # fmt: skip
    except docker.errors.DockerException:
        raise NotLocal(refuse) from None
    try:
        return container_peers(client, refuse)
    finally:
        client.close()


def container_peers(
    client: docker.DockerClient, refuse: str, container_id: str | None = None
) -> frozenset[str]:
    """The gateways of this container's networks (the host on each) and loopback, once every
    published port is checked to be on the host's loopback."""
    own = own_container(client, container_id)
    if not own.found:
        raise NotLocal(refuse)
    if own.network_mode == "host":
        raise NotLocal(f"{refuse}: the container shares the host's network")
    for port, host_ip, host_port in own.published:
        if not is_loopback(host_ip or "0.0.0.0"):
            raise NotLocal(f"{refuse}, or publish the port on 127.0.0.1 only: {port} is published "
                           f"on {host_ip or '0.0.0.0'}:{host_port}")  # fmt: skip
    return LOOPBACK_PEERS | {gateway for _, gateway in own.gateways}
