"""The docker backend for an orchestrator in compose: workers on a network, reached by name,
labelled as one-off containers of the orchestrator's compose project; nothing published on the host."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from anvyl.orchestrator.workspaces.base import WorkspaceError
from anvyl.orchestrator.workspaces.config import BackendContext, DockerWorkspaceConfig
from anvyl.orchestrator.workspaces.docker import DockerBackend
from anvyl.orchestrator.workspaces.docker_network import (
    COMPOSE_ONEOFF,
    COMPOSE_PROJECT,
    COMPOSE_SERVICE,
    dns_name,
)
from anvyl.orchestrator.workspaces.repos import RepoRef
from tests.conftest import AGENT_IMAGE

BASE_IMAGE = "anvyl/base:bookworm"


@pytest.fixture
def network(docker_client: docker.DockerClient, docker_instance: str) -> Iterator[str]:
    net = docker_client.networks.create(
        f"anvyl-deploy-{docker_instance}", labels={"anvyl.instance": docker_instance}
    )
    try:
        yield str(net.name)
    finally:
        for container in docker_client.containers.list(all=True, filters={"network": net.id}):
            container.remove(force=True)
        net.remove()


@pytest.fixture
def orchestrator_container(
    docker_client: docker.DockerClient, docker_instance: str, network: str, tmp_path: Path
) -> Iterator[str]:
    """A container standing where the orchestrator runs in compose: on the network, with the
    labels docker-compose gives a service's container."""
    project = f"anvyl-deploy-{docker_instance}"
    container = docker_client.containers.run(
        BASE_IMAGE, ["sleep", "300"], detach=True, network=network, init=True,
        name=f"{project}-orchestrator-1", volumes={str(tmp_path / "data"): {"bind": "/data", "mode": "rw"}},
        labels={COMPOSE_PROJECT: project, COMPOSE_SERVICE: "orchestrator",
                "com.docker.compose.container-number": "1", "anvyl.instance": docker_instance},
    )  # fmt: skip
    try:
        yield str(container.id)
    finally:
        container.remove(force=True)


async def test_a_worker_joins_the_network_is_reached_by_name_and_belongs_to_the_project(
    docker_client: docker.DockerClient, docker_instance: str, network: str,
    orchestrator_container: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("HOSTNAME", orchestrator_container[:12])  # as inside that container
    config = DockerWorkspaceConfig(image=AGENT_IMAGE, network=network)
    backend = DockerBackend(config, BackendContext(docker_instance, tmp_path))
    try:
        # A long workspace id: the container name is no DNS label (over 63 characters).
        workspace = "a-repository-with-a-rather-long-name-for-dns-0123456789"
        repo = RepoRef("https://example.invalid/team/repo.git", None, workspace)
        endpoint = await backend.ensure_running(repo)
        name = backend.container_name(workspace)
        assert len(name) > 63
        assert endpoint.base_url == f"http://{dns_name(name)}:8000" and len(dns_name(name)) <= 63
        container = docker_client.containers.get(name)
        assert container.attrs["HostConfig"]["PortBindings"] in (None, {})  # nothing on the host
        assert set(container.attrs["NetworkSettings"]["Networks"]) == {network}
        project = f"anvyl-deploy-{docker_instance}"
        assert container.labels[COMPOSE_PROJECT] == project
        assert container.labels[COMPOSE_SERVICE] == "orchestrator"
        assert container.labels[COMPOSE_ONEOFF] == "True"
        # Another container on the network reaches the worker by its name (Docker's DNS).
        probe = (
            "import time, urllib.request\n"
            "for _ in range(100):\n"
            "    try:\n"
            f"        print(urllib.request.urlopen('{endpoint.base_url}/health', timeout=2).status); break\n"
            "    except OSError: time.sleep(0.2)\n"
        )
        out = docker_client.containers.run(
            BASE_IMAGE, ["python3", "-c", probe], network=network, remove=True
        )
        assert out.decode().strip() == "200"
        # `GET /containers` reads this: its name, state, workspace, creation time.
        (owned,) = await backend.list_owned()
        assert (owned.name, owned.state, owned.workspace_id) == (name, "running", workspace)
        assert owned.created is not None and owned.unusable is None
        # The same container answers the next call (it is usable as it is).
        again = await backend.ensure_running(repo)
        assert again.handle == endpoint.handle and not again.started
    finally:
        await backend.remove(workspace, purge=True)
        await backend.close()


async def test_a_repository_path_of_the_orchestrators_container_is_refused_with_what_to_do(
    docker_instance: str, network: str, tmp_path: Path
) -> None:
    backend = DockerBackend(
        DockerWorkspaceConfig(image=AGENT_IMAGE, network=network),
        BackendContext(docker_instance, tmp_path),
    )
    try:
        repo = RepoRef(str(tmp_path), tmp_path, f"local-{secrets.token_hex(5)}")
        with pytest.raises(WorkspaceError, match="that no volume holds: give a git URL"):
            await backend.ensure_running(repo)
    finally:
        await backend.close()


async def test_a_missing_network_is_named(docker_instance: str, tmp_path: Path) -> None:
    backend = DockerBackend(
        DockerWorkspaceConfig(image=AGENT_IMAGE, network=f"anvyl-deploy-missing-{docker_instance}"),
        BackendContext(docker_instance, tmp_path),
    )
    try:
        repo = RepoRef("https://example.invalid/a/b.git", None, "b-0123456789")
        with pytest.raises(WorkspaceError, match="ANVYL_DOCKER_NETWORK='anvyl-deploy-missing-"):
            await backend.ensure_running(repo)
    finally:
        await backend.remove("b-0123456789", purge=True)
        await backend.close()


async def test_a_repository_in_a_volume_of_the_orchestrator_is_mounted_from_its_source(
    docker_client: docker.DockerClient, docker_instance: str, network: str,
    orchestrator_container: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """A scratch workspace (files sent without a repository) lives in the orchestrator's data
    volume: the worker gets that directory, read-only, and nothing else of the volume."""
    monkeypatch.setenv("HOSTNAME", orchestrator_container[:12])
    (tmp_path / "data" / "scratch" / "t1").mkdir(parents=True)
    backend = DockerBackend(DockerWorkspaceConfig(image=AGENT_IMAGE, network=network),
                            BackendContext(docker_instance, tmp_path))  # fmt: skip
    try:
        repo = RepoRef("/data/scratch/t1", Path("/data/scratch/t1"), "scratch-0123456789")
        await backend.ensure_running(repo)
        container = docker_client.containers.get(backend.container_name("scratch-0123456789"))
        (source,) = [m for m in container.attrs["Mounts"] if m["Destination"] == "/mnt/source"]
        assert source["Source"] == str(tmp_path / "data" / "scratch" / "t1")
        assert source["RW"] is False
    finally:
        await backend.remove("scratch-0123456789", purge=True)
        await backend.close()
