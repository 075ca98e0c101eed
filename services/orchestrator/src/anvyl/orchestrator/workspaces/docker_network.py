"""Where the docker backend puts a worker when the orchestrator itself runs in a container
(docker-compose): on a Docker network, reached by its container name, as part of the compose project.

The workers get the labels of a one-off container (`docker-compose run`) of the orchestrator's own
service, so `docker-compose down` (1.29 and v2) stops and removes them with the stack; without them
they would outlive it and keep its network from being removed.
"""

from __future__ import annotations

import os
import socket

import docker
import docker.errors

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"


def own_container_id() -> str:
    """Docker names a container's host after its id (unless `hostname:` says otherwise)."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


def compose_labels(client: docker.DockerClient, container_id: str | None = None) -> dict[str, str]:
    """The compose labels a worker of this orchestrator gets; none outside a compose project."""
    try:
        own = client.containers.get(container_id or own_container_id())
    except (docker.errors.NotFound, docker.errors.APIError):
        return {}  # not in a container of this daemon
    project, service = own.labels.get(COMPOSE_PROJECT), own.labels.get(COMPOSE_SERVICE)
    if not project or not service:
        return {}
    return {COMPOSE_PROJECT: project, COMPOSE_SERVICE: service, COMPOSE_ONEOFF: "True"}
