"""Seed 000's "Create a nginx container on port 8080", end to end: a model (scripted, the real
OpenAI wire protocol) calls the hub's `docker__create_container` with a published port, the task
waits for a person's approval (the tool is destructive), and once approved the container answers
on that port of the host. Real hub, real Docker daemon; an image built from the local base image
stands in for nginx (no registry here)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import docker
import httpx
import pytest

from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply, ScriptedToolCall
from tests.helpers import free_port
from tests.mcp_hub.conftest import TEST_LABEL_KEY, TEST_LABEL_VALUE, BackgroundServer
from tests.mcp_hub.test_hub_docker_publish import _get_until_up, httpd_image  # noqa: F401
from tests.orchestrator.conftest import OrchestratorFactory, tools
from tests.orchestrator.test_agent_loop import hub, wait_for  # noqa: F401

pytestmark = pytest.mark.docker


@pytest.fixture
def labelled_cleanup(docker_client: docker.DockerClient) -> Any:
    yield
    for container in docker_client.containers.list(
        all=True, filters={"label": f"{TEST_LABEL_KEY}={TEST_LABEL_VALUE}"}
    ):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


async def test_a_model_creates_a_web_server_container_on_a_port_once_approved(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, hub: BackgroundServer,  # noqa: F811
    docker_client: docker.DockerClient, httpd_image: str, labelled_cleanup: None,  # noqa: F811
) -> None:  # fmt: skip
    port = free_port()
    model.push(
        tools(
            ScriptedToolCall(
                "docker__create_container",
                json.dumps(
                    {
                        "image": httpd_image,
                        "name": f"web-{port}",
                        "ports": [{"container_port": 8000, "host_port": port}],
                        "labels": {TEST_LABEL_KEY: TEST_LABEL_VALUE},
                    }
                ),
            )
        ),
        ScriptedReply(content=f"The web server container is running on port {port}."),
    )
    async with make_orchestrator(workspace_backend="local") as orch:
        body = {"query": f"Create a web server container on port {port}", "mode": "background"}
        task_id = (await orch.http.post("/orchestrate", json=body)).json()["task_id"]
        await wait_for(orch, task_id, lambda ev: any(e["data"].get("pending") for e in ev))
        before = docker_client.containers.list(filters={"name": f"web-{port}"})
        approved = await orch.http.post(f"/tasks/{task_id}/approve")
        await wait_for(orch, task_id, lambda ev: ev[-1]["type"] == "result")
        task = (await orch.http.get(f"/tasks/{task_id}")).json()
    assert before == [] and approved.status_code == 200
    assert task["status"] == "succeeded", task["error"]
    assert task["result"] == f"The web server container is running on port {port}."
    (tool_call,) = task["metadata"]["tool_calls"]
    assert tool_call["name"] == "docker__create_container" and tool_call["ok"] is True
    response = _get_until_up(f"http://127.0.0.1:{port}/index.html")
    assert response.status_code == 200 and "hub test httpd" in response.text
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
