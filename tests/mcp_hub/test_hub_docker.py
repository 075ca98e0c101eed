"""The docker server through the real hub, against the real local Docker daemon."""

import uuid

import docker
import pytest

from anvyl.mcp_hub.servers.docker import CREATED_BY_LABEL

from .conftest import (
    BASE_IMAGE,
    TEST_LABEL_KEY,
    TEST_LABEL_VALUE,
    HubFactory,
    RunningHub,
    mcp_session,
    result_text,
)

pytestmark = pytest.mark.docker


async def test_container_lifecycle(hub: RunningHub, docker_client: docker.DockerClient) -> None:
    name = f"anvyl-mcp-hub-test-{uuid.uuid4().hex[:8]}"
    async with mcp_session(hub.url("docker")) as session:
        created = await session.call_tool(
            "create_container",
            {
                "image": BASE_IMAGE,
                "name": name,
                "command": ["sh", "-c", "echo booted; exec sleep infinity"],
                "environment": {"GREETING": "hello", "API_TOKEN": "s3cret"},
                "labels": {TEST_LABEL_KEY: TEST_LABEL_VALUE},
            },
        )
        assert not created.is_error, created.content
        container_id = created.structured_content["id"]
        assert created.structured_content["name"] == name
        # Created and started in one call.
        assert created.structured_content["status"] == "running"
        assert created.structured_content["running"] is True
        assert created.structured_content["labels"][CREATED_BY_LABEL] == "true"
        assert docker_client.containers.get(container_id).labels[TEST_LABEL_KEY] == TEST_LABEL_VALUE

        # Starting a running container changes nothing.
        started = await session.call_tool("start_container", {"container_id": name})
        assert not started.is_error, started.content
        assert started.structured_content["status"] == "running"

        listed = await session.call_tool(
            "list_containers", {"labels": [f"{TEST_LABEL_KEY}={TEST_LABEL_VALUE}"]}
        )
        assert name in [c["name"] for c in listed.structured_content["containers"]]

        info = await session.call_tool("get_container_info", {"container_id": container_id[:12]})
        assert not info.is_error, info.content
        assert info.structured_content["running"] is True
        assert info.structured_content["image"] == BASE_IMAGE
        assert "GREETING=hello" in info.structured_content["environment"]
        assert "API_TOKEN=***" in info.structured_content["environment"]

        executed = await session.call_tool(
            "exec_in_container",
            {"container_id": name, "command": ["sh", "-c", "echo out; echo err >&2; exit 3"]},
        )
        assert not executed.is_error, executed.content
        assert executed.structured_content["exit_code"] == 3
        assert executed.structured_content["stdout"] == "out\n"
        assert executed.structured_content["stderr"] == "err\n"

        logs = await session.call_tool("container_logs", {"container_id": name, "tail": 10})
        assert not logs.is_error, logs.content
        assert "booted" in logs.structured_content["logs"]

        stopped = await session.call_tool("stop_container", {"container_id": name, "timeout_s": 1})
        assert not stopped.is_error, stopped.content
        assert stopped.structured_content["status"] == "exited"

        removed = await session.call_tool("remove_container", {"container_id": name})
        assert not removed.is_error, removed.content
        assert removed.structured_content == {"id": container_id, "name": name, "removed": True}
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(container_id)


async def test_docker_errors_are_tool_errors(
    hub: RunningHub, docker_client: docker.DockerClient
) -> None:
    async with mcp_session(hub.url("docker")) as session:
        missing = await session.call_tool("get_container_info", {"container_id": "no-such-thing"})
        bad_image = await session.call_tool(
            "create_container",
            {
                "image": "anvyl/does-not-exist:never",
                "labels": {TEST_LABEL_KEY: TEST_LABEL_VALUE},
                "pull_timeout_s": 10,
            },
        )
        invalid = await session.call_tool("stop_container", {"container_id": ""})
        # The server keeps serving after errors.
        still_alive = await session.call_tool("list_containers", {"all": True})
    assert missing.is_error
    assert "no-such-thing" in result_text(missing)
    assert bad_image.is_error
    assert "anvyl/does-not-exist" in result_text(bad_image)
    assert invalid.is_error
    assert not still_alive.is_error


async def test_exec_timeout_is_a_tool_error(
    hub: RunningHub, docker_client: docker.DockerClient
) -> None:
    container = docker_client.containers.run(
        BASE_IMAGE,
        ["sleep", "infinity"],
        detach=True,
        labels={TEST_LABEL_KEY: TEST_LABEL_VALUE},
    )
    async with mcp_session(hub.url("docker")) as session:
        result = await session.call_tool(
            "exec_in_container",
            {"container_id": container.id, "command": ["sleep", "20"], "timeout_s": 0.5},
        )
    assert result.is_error
    assert "did not finish within 0.5s" in result_text(result)


async def test_unreachable_daemon_is_a_tool_error(start_hub: HubFactory) -> None:
    hub = start_hub(docker_url="unix:///tmp/anvyl-no-docker-here.sock")
    async with mcp_session(hub.url("docker")) as session:
        result = await session.call_tool("list_containers", {})
    assert result.is_error
    assert "Docker" in result_text(result)
