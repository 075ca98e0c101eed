"""The docker backend: one labelled, limited, non-root container per workspace, with its own volume.

The container gets no Docker socket, no host network, no model keys: only its own worker token.
Its port is published on 127.0.0.1 alone; with a `network` (an orchestrator in compose) it joins that
network instead, publishes nothing, and is reached by its container name (docker_network.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker.models.containers import Container

from anvyl.orchestrator.workspaces.base import (
    WORKER_PORT,
    OwnedWorker,
    WorkerEndpoint,
    WorkspaceError,
)
from anvyl.orchestrator.workspaces.config import BackendContext, DockerWorkspaceConfig
from anvyl.orchestrator.workspaces.docker_network import OwnContainer, dns_name, own_container
from anvyl.orchestrator.workspaces.repos import RepoRef
from anvyl.worker.client import WorkerClient

if TYPE_CHECKING:
    from anvyl.orchestrator.workspaces.snapshot_files import DockerContainerFiles

LABEL_MANAGED = "anvyl.managed"
LABEL_WORKSPACE = "anvyl.workspace"
LABEL_INSTANCE = "anvyl.instance"
LABEL_AGENT = "anvyl.agent"
SOURCE_MOUNT = "/mnt/source"
TOKEN_ENV = "ANVYL_WORKER_TOKEN"
_DOCKER_TIMEOUT_S = 60


def docker_client(config: DockerWorkspaceConfig) -> docker.DockerClient:
    if config.docker_url:
        return docker.DockerClient(base_url=config.docker_url, timeout=_DOCKER_TIMEOUT_S)
    return docker.from_env(timeout=_DOCKER_TIMEOUT_S)


def docker_available(config: DockerWorkspaceConfig) -> bool:
    try:
        client = docker_client(config)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except docker.errors.DockerException:
        return False


class DockerBackend:
    name = "docker"

    def __init__(self, config: DockerWorkspaceConfig, context: BackendContext) -> None:
        self.config = config
        self.instance = context.instance
        self.client = docker_client(config)
        self._prefix = "anvyl-" if self.instance == "default" else f"anvyl-{self.instance}-"
        # In compose, the workers belong to the orchestrator's project (so `down` removes them).
        self._own = own_container(self.client) if config.network else OwnContainer()
        self._compose = self._own.compose_labels()

    # Names and labels -------------------------------------------------------------------------

    def container_name(self, workspace_id: str) -> str:
        return f"{self._prefix}{workspace_id}"

    def volume_name(self, workspace_id: str) -> str:
        return f"{self._prefix}{workspace_id}-files"

    def labels(self, workspace_id: str) -> dict[str, str]:
        return self._compose | {
            LABEL_MANAGED: "true",
            LABEL_INSTANCE: self.instance,
            LABEL_WORKSPACE: workspace_id,
        }

    def worker_client(self, endpoint: WorkerEndpoint) -> WorkerClient:
        return WorkerClient(endpoint.base_url, endpoint.token)

    def clone_url(self, repo: RepoRef) -> str:
        return SOURCE_MOUNT if repo.local_path is not None else repo.url

    def workspace_files(self, workspace_id: str) -> DockerContainerFiles:
        """The workspace's files (its container's /workspace), for snapshots."""
        from anvyl.orchestrator.workspaces.snapshot_files import DockerContainerFiles

        return DockerContainerFiles(
            self.client, self.container_name(workspace_id), volume=self.volume_name(workspace_id)
        )

    # Lifecycle --------------------------------------------------------------------------------

    async def ensure_running(self, repo: RepoRef) -> WorkerEndpoint:
        return await asyncio.to_thread(self._ensure_running, repo)

    def _ensure_running(self, repo: RepoRef) -> WorkerEndpoint:
        started = False
        try:
            container = self.client.containers.get(self.container_name(repo.workspace_id))
        except docker.errors.NotFound:
            container = self._create(repo)
        if container.status != "running":
            try:
                container.start()
            except docker.errors.APIError as exc:
                raise WorkspaceError(
                    f"cannot start workspace container: {exc.explanation}{self._network_hint(exc)}"
                ) from exc
            started = True
            container.reload()
        return self._endpoint(container, started)

    def _create(self, repo: RepoRef) -> Container:
        workspace_id = repo.workspace_id
        labels = dict(repo.labels) | self.labels(workspace_id)
        self.client.volumes.create(self.volume_name(workspace_id), labels=labels)
        volumes: dict[str, dict[str, str]] = {
            self.volume_name(workspace_id): {"bind": "/workspace", "mode": "rw"}
        }
        if repo.local_path is not None:
            volumes[str(self._source_on_host(repo.local_path))] = {
                "bind": SOURCE_MOUNT,
                "mode": "ro",
            }
        options: dict[str, Any] = dict(
            image=self.config.image,
            name=self.container_name(workspace_id),
            labels=labels,
            environment={TOKEN_ENV: secrets.token_urlsafe(32)},
            volumes=volumes,
            ports={f"{WORKER_PORT}/tcp": ("127.0.0.1", None)},
            init=True,  # reaps zombies left by the commands the worker runs
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=512m"},
            user="1000:1000",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            nano_cpus=int(self.config.cpus * 1e9),
            mem_limit=self.config.memory,
            pids_limit=self.config.pids,
            detach=True,
        )
        if self.config.network:
            del options["ports"]
            options["network"] = self.config.network
            alias = dns_name(self.container_name(workspace_id))
            options["networking_config"] = {
                self.config.network: self.client.api.create_endpoint_config(aliases=[alias])
            }
        try:
            return self.client.containers.create(**options)
        except docker.errors.ImageNotFound as exc:
            raise WorkspaceError(
                f"worker image {self.config.image!r} not found: build it with "
                "scripts/build-images.sh (or set ANVYL_AGENT_IMAGE)"
            ) from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # a concurrent caller (maybe another replica) is creating it
                return self._wait_created(self.container_name(workspace_id))
            raise WorkspaceError(
                f"cannot create workspace container: {exc.explanation}{self._network_hint(exc)}"
            ) from exc

    def _network_hint(self, exc: docker.errors.APIError) -> str:
        if self.config.network and "network" in str(exc.explanation):
            return f" (the network ANVYL_DOCKER_NETWORK={self.config.network!r} must exist)"
        return ""

    def _source_on_host(self, path: Path) -> Path:
        """A repository on this machine as the daemon sees it: the path itself, or in a container
        (a network is set) the path under the source of the mount that holds it."""
        if not self.config.network:
            return path
        found = self._own.host_path(path)
        if found is None:
            raise WorkspaceError(
                f"repo_url {str(path)!r} is a path inside the orchestrator's container that no "
                "volume holds: give a git URL the worker can clone, or send the files"
            )
        return found

    def _wait_created(self, name: str) -> Container:
        # The daemon reserves the name before the container can be inspected: retry briefly.
        deadline = time.monotonic() + 10
        while True:
            try:
                return self.client.containers.get(name)
            except docker.errors.NotFound:
                if time.monotonic() > deadline:
                    raise WorkspaceError(f"container {name} was being created by another caller "
                                         "but never appeared") from None  # fmt: skip
                time.sleep(0.05)

    def _endpoint(self, container: Container, started: bool) -> WorkerEndpoint:
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"] or [])
        return WorkerEndpoint(
            workspace_id=container.labels[LABEL_WORKSPACE],
            base_url=self._base_url(container),
            token=env[TOKEN_ENV],
            handle=container.id or "",
            started=started,
        )

    def _base_url(self, container: Container) -> str:
        if self.config.network:
            return f"http://{dns_name(str(container.name))}:{WORKER_PORT}"
        ports = container.attrs["NetworkSettings"]["Ports"].get(f"{WORKER_PORT}/tcp") or []
        if not ports:
            raise WorkspaceError(f"container {container.name} has no published worker port")
        return f"http://127.0.0.1:{ports[0]['HostPort']}"

    async def logs(self, workspace_id: str, lines: int = 50) -> str:
        def read() -> str:
            try:
                container = self.client.containers.get(self.container_name(workspace_id))
            except docker.errors.NotFound:
                return ""
            return bytes(container.logs(tail=lines)).decode(errors="replace")

        return await asyncio.to_thread(read)

    async def stop(self, workspace_id: str) -> None:
        def stop() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(self.container_name(workspace_id)).stop(timeout=5)

        await asyncio.to_thread(stop)

    async def remove(self, workspace_id: str, *, purge: bool) -> None:
        def remove() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(self.container_name(workspace_id)).remove(force=True)
            if purge:
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.volumes.get(self.volume_name(workspace_id)).remove(force=True)

        await asyncio.to_thread(remove)

    async def list_owned(self) -> list[OwnedWorker]:
        def owned() -> list[OwnedWorker]:
            filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={self.instance}"]}
            return [
                OwnedWorker(
                    c.labels[LABEL_WORKSPACE],
                    c.id or "",
                    c.status == "running",
                    self._unusable(c),
                    name=c.name,
                    state=c.status,
                    agent=c.labels.get(LABEL_AGENT),
                    created=_created(c),
                )
                for c in self.client.containers.list(all=True, filters=filters)
            ]

        return await asyncio.to_thread(owned)

    def _unusable(self, container: Container) -> str | None:
        config = container.attrs["Config"]
        if config.get("Image") != self.config.image:
            return f"runs image {config.get('Image')!r}, not {self.config.image!r}"
        if not any(item.startswith(f"{TOKEN_ENV}=") for item in config.get("Env") or []):
            return "has no worker token"
        if self.config.network:
            networks = container.attrs["NetworkSettings"].get("Networks") or {}
            if self.config.network not in networks:
                return f"is not on the network {self.config.network!r}"
            if dns_name(str(container.name)) not in (
                networks[self.config.network].get("Aliases") or []
            ):
                return "has no DNS name on the network"
        elif f"{WORKER_PORT}/tcp" not in (container.attrs["HostConfig"].get("PortBindings") or {}):
            return "does not publish the worker port"
        return None

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def _created(container: Container) -> datetime | None:
    """The container's creation time (Docker gives RFC 3339 with nanoseconds)."""
    text = str(container.attrs.get("Created") or "")
    try:
        return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00"))
    except ValueError:
        return None
