"""An orchestrator without API keys answers this machine only. In a container that means: it starts
only when every port of its container is published on the host's loopback (asked of the real Docker
daemon), and it answers only peers that are the host (a gateway of its networks) or itself."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import httpx
import pytest
from docker.models.containers import Container
from fastapi import Depends, FastAPI
from pydantic import SecretStr

from anvyl.orchestrator.api.auth import ApiKeys, require_api_key
from anvyl.orchestrator.api.local_clients import (
    LOOPBACK_PEERS,
    NotLocal,
    container_peers,
    local_peers,
)
from anvyl.orchestrator.settings import Settings
from tests.helpers import free_port

REFUSE = "refusing to listen on 0.0.0.0 without API keys"


@pytest.fixture
def started(docker_client: docker.DockerClient) -> Iterator[list[Container]]:
    """Containers a test starts, removed whatever happens."""
    containers: list[Container] = []
    yield containers
    for container in containers:
        container.remove(force=True)


def run_idle(client: docker.DockerClient, started: list[Container], **options: object) -> Container:
    container = client.containers.run("anvyl/base:bookworm", ["sleep", "300"], detach=True,
                                      labels={"anvyl.test": "local-clients"}, **options)  # type: ignore[call-overload]  # fmt: skip
    started.append(container)
    container.reload()
    return container


def test_a_port_published_on_loopback_only_admits_the_hosts_gateway(
    docker_client: docker.DockerClient, started: list[Container]
) -> None:
    container = run_idle(docker_client, started, ports={"8080/tcp": ("127.0.0.1", free_port())})
    peers = container_peers(docker_client, REFUSE, container.id)
    gateway = container.attrs["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
    assert peers == LOOPBACK_PEERS | {gateway}
    assert container.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] not in peers


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"ports": {"8080/tcp": free_port()}}, "8080/tcp is published on 0.0.0.0:"),
        ({"ports": {"8080/tcp": ("127.0.0.1", free_port()), "9090/tcp": ("0.0.0.0", free_port())}},
         "9090/tcp is published on 0.0.0.0:"),
        ({"network_mode": "host"}, "the container shares the host's network"),
    ],
    ids=["all-addresses", "one-port-of-two", "host-network"],
)  # fmt: skip
def test_without_keys_a_container_published_beyond_loopback_refuses_to_start(
    docker_client: docker.DockerClient, started: list[Container], options: dict[str, object],
    why: str,
) -> None:  # fmt: skip
    container = run_idle(docker_client, started, **options)
    with pytest.raises(NotLocal) as refused:
        container_peers(docker_client, REFUSE, container.id)
    assert REFUSE in str(refused.value) and why in str(refused.value)


def test_outside_a_container_no_keys_on_another_address_refuses_to_start(
    docker_client: docker.DockerClient,
) -> None:
    with pytest.raises(NotLocal) as refused:
        container_peers(docker_client, REFUSE, "no-such-container-anywhere")
    assert str(refused.value) == REFUSE
    with pytest.raises(NotLocal) as refused:
        local_peers(Settings(host="0.0.0.0"))  # this test runs on the host, not in a container
    assert str(refused.value) == (
        "refusing to listen on 0.0.0.0 without API keys: set ANVYL_API_KEYS (comma-separated) "
        "or bind 127.0.0.1"
    )


def test_keys_or_a_loopback_address_need_no_peer_filter() -> None:
    assert local_peers(Settings(host="127.0.0.1")) is None
    assert local_peers(Settings(host="0.0.0.0", api_keys=[SecretStr("k" * 32)])) is None


def app_with(keys: ApiKeys) -> FastAPI:
    app = FastAPI()
    app.state.api_keys = keys

    @app.get("/tasks", dependencies=[Depends(require_api_key)])
    def tasks() -> dict[str, list[str]]:
        return {"tasks": []}

    return app


async def status_from(
    app: FastAPI, peer: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://orchestrator") as client:
        return await client.get("/tasks", headers=headers)


async def test_without_keys_only_the_admitted_peers_are_answered() -> None:
    app = app_with(ApiKeys(Settings(), frozenset({"172.22.0.1"}) | LOOPBACK_PEERS))
    assert (await status_from(app, "172.22.0.1")).status_code == 200
    assert (await status_from(app, "127.0.0.1")).status_code == 200
    refused = await status_from(app, "172.22.0.5")  # a worker on the same network
    assert refused.status_code == 403
    assert "answers this machine only" in refused.json()["detail"]
    assert "ANVYL_API_KEYS" in refused.json()["detail"]


async def test_with_keys_the_key_decides_not_the_peer() -> None:
    keys = ApiKeys(Settings(api_keys=[SecretStr("k" * 32)]), None)
    app = app_with(keys)
    assert (await status_from(app, "203.0.113.9")).status_code == 401
    ok = await status_from(app, "203.0.113.9", {"authorization": "Bearer " + "k" * 32})
    assert ok.status_code == 200
