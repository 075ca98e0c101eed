"""`create_container` does what seed 000's "Create a nginx container on port 8080" needs: it
starts a container from an image with a published port, reachable on that port from the host.
Real daemon, real hub, the SDK's MCP client over streamable HTTP."""

import contextlib
import io
import socket
import time
from collections.abc import Iterator

import docker
import httpx
import pytest

from .conftest import (
    BASE_IMAGE,
    TEST_LABEL_KEY,
    TEST_LABEL_VALUE,
    RunningHub,
    mcp_session,
    remove_test_containers,
    result_text,
)

pytestmark = pytest.mark.docker

# A web server image built from the local base image (no registry needed): Python's http.server
# serving one file.
HTTPD_IMAGE = "anvyl/hub-test-httpd:a2a"
_DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN mkdir -p /srv && echo 'hello from the hub test httpd' > /srv/index.html
WORKDIR /srv
EXPOSE 8000
CMD ["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0"]
"""


@pytest.fixture(scope="module")
def httpd_image() -> Iterator[str]:
    client = docker.from_env(timeout=120)
    try:
        client.images.build(
            fileobj=io.BytesIO(_DOCKERFILE.encode()),
            tag=HTTPD_IMAGE,
            rm=True,
            forcerm=True,
            labels={TEST_LABEL_KEY: TEST_LABEL_VALUE},
        )
        yield HTTPD_IMAGE
    finally:
        remove_test_containers(client)
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(HTTPD_IMAGE, force=True)
        client.close()


def _get_until_up(url: str, timeout_s: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def test_create_container_publishes_a_port_reachable_from_the_host(
    hub: RunningHub, docker_client: docker.DockerClient, httpd_image: str
) -> None:
    async with mcp_session(hub.url("docker")) as session:
        created = await session.call_tool(
            "create_container",
            {
                "image": httpd_image,
                "ports": [{"container_port": 8000}],
                "environment": {"GREETING": "hello"},
                "restart_policy": "unless-stopped",
                "labels": {TEST_LABEL_KEY: TEST_LABEL_VALUE},
            },
        )
        assert not created.is_error, result_text(created)
        details = created.structured_content
        assert details["running"] is True
        (binding,) = details["ports"]
        assert binding["container_port"] == "8000/tcp"
        # Bound to loopback unless told otherwise.
        assert binding["host_ip"] == "127.0.0.1"
        host_port = int(binding["host_port"])

        response = _get_until_up(f"http://127.0.0.1:{host_port}/index.html")
        assert response.status_code == 200
        assert response.text == "hello from the hub test httpd\n"

        attrs = docker_client.containers.get(details["id"]).attrs
        assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert "GREETING=hello" in attrs["Config"]["Env"]

        logs = await session.call_tool("container_logs", {"container_id": details["id"]})
        assert not logs.is_error, result_text(logs)
        assert "GET /index.html" in logs.structured_content["logs"]

        removed = await session.call_tool(
            "remove_container", {"container_id": details["id"], "force": True}
        )
        assert not removed.is_error, result_text(removed)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(details["id"])


async def test_a_container_that_cannot_start_is_not_left_behind(
    hub: RunningHub, docker_client: docker.DockerClient, httpd_image: str
) -> None:
    async with mcp_session(hub.url("docker")) as session:
        first = await session.call_tool(
            "create_container",
            {
                "image": httpd_image,
                "ports": [{"container_port": 8000}],
                "labels": {TEST_LABEL_KEY: TEST_LABEL_VALUE},
            },
        )
        assert not first.is_error, result_text(first)
        taken = int(first.structured_content["ports"][0]["host_port"])
        second = await session.call_tool(
            "create_container",
            {
                "image": httpd_image,
                "ports": [{"container_port": 8000, "host_port": taken}],
                "labels": {TEST_LABEL_KEY: TEST_LABEL_VALUE},
            },
        )
    assert second.is_error
    assert "Docker API error" in result_text(second)
    labelled = docker_client.containers.list(
        all=True,
        filters={"label": f"{TEST_LABEL_KEY}={TEST_LABEL_VALUE}", "ancestor": httpd_image},
    )
    assert [c.id for c in labelled] == [first.structured_content["id"]]


async def test_a_missing_image_without_a_registry_is_a_clear_error_within_the_timeout(
    hub: RunningHub, docker_client: docker.DockerClient
) -> None:
    started = time.monotonic()
    async with mcp_session(hub.url("docker")) as session:
        result = await session.call_tool(
            "create_container",
            {
                "image": "registry.invalid/anvyl/never-built:a2a",
                "labels": {TEST_LABEL_KEY: TEST_LABEL_VALUE},
                "pull_timeout_s": 5,
            },
        )
    elapsed = time.monotonic() - started
    assert result.is_error
    text = result_text(result)
    assert "registry.invalid/anvyl/never-built:a2a is not on the daemon" in text
    # Within the pull timeout (plus the MCP round trip), however the registry fails.
    assert elapsed < 5 + 10, elapsed


async def test_the_schema_lets_a_model_ask_for_a_port(hub: RunningHub) -> None:
    """What a model reads: `ports` with container and host port, described; destructive."""
    async with mcp_session(hub.url("docker")) as session:
        listed = await session.list_tools()
    tool = next(t for t in listed.tools if t.name == "create_container")
    assert tool.annotations is not None and tool.annotations.destructive_hint is True
    schema = tool.input_schema
    assert schema["required"] == ["image"]
    assert "8080" in schema["properties"]["ports"]["description"]
    port = schema["$defs"]["PublishedPort"]["properties"]
    assert {"container_port", "host_port", "host_ip", "protocol"} <= set(port)
    assert set(schema["properties"]["restart_policy"]["enum"]) == {
        "no", "always", "unless-stopped", "on-failure",
    }  # fmt: skip
    assert "pulled" in (tool.description or "")


async def test_a_registry_that_never_answers_costs_only_the_pull_timeout(
    hub: RunningHub, docker_client: docker.DockerClient
) -> None:
    # A "registry" on loopback that accepts connections and never says a word.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        image = f"127.0.0.1:{port}/anvyl/never-answers:a2a"
        started = time.monotonic()
        async with mcp_session(hub.url("docker")) as session:
            result = await session.call_tool(
                "create_container",
                {"image": image, "labels": {TEST_LABEL_KEY: TEST_LABEL_VALUE},
                 "pull_timeout_s": 3},
            )  # fmt: skip
        elapsed = time.monotonic() - started
    assert result.is_error
    assert f"{image} is not on the daemon and no registry answered within 3s" in result_text(result)
    assert elapsed < 3 + 10, elapsed
