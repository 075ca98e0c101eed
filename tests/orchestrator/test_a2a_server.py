"""Anvyl as an A2A agent: the a2a-sdk's own client against a real orchestrator (its real lifespan,
uvicorn on loopback, the built-in planner, local workspaces), through the Agent Card it publishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2AClientError, Client, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetExtendedAgentCardRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError
from google.protobuf import json_format

from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from tests.helpers import serving
from tests.orchestrator.conftest import OrchestratorFactory

KEY = "a2a-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@asynccontextmanager
async def a2a_anvyl(make_orchestrator: OrchestratorFactory, **overrides: Any) -> AsyncIterator[str]:
    """A real orchestrator with an API key on a loopback port; yields its base URL."""
    settings = {"workspace_backend": "local", "workspace_sandbox": "none", "api_keys": KEY}
    async with make_orchestrator(**(settings | overrides)) as orch, serving(orch.app) as url:
        yield url


@asynccontextmanager
async def a2a_client(
    url: str, *, streaming: bool, token: str | None = KEY
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        config = ClientConfig(httpx_client=http, streaming=streaming)
        client = await ClientFactory(config).create_from_url(url)
        try:
            yield client
        finally:
            await client.close()


def message(text: str, **metadata: Any) -> SendMessageRequest:
    request = SendMessageRequest(
        message=Message(message_id=f"m-{text[:8]}", role=Role.ROLE_USER, parts=[Part(text=text)])
    )
    json_format.ParseDict(metadata, request.message.metadata)
    return request


async def send(client: Client, request: SendMessageRequest) -> list[StreamResponse]:
    return [response async for response in client.send_message(request)]


def result_text(task: Task) -> str:
    return "".join(part.text for artifact in task.artifacts for part in artifact.parts)


async def test_the_card_is_public_and_says_how_to_authenticate(
    make_orchestrator: OrchestratorFactory,
) -> None:
    async with a2a_anvyl(make_orchestrator) as url, httpx.AsyncClient(timeout=30) as http:
        card = (await http.get(f"{url}/.well-known/agent-card.json")).json()
        refused = await http.post(f"{url}/a2a", json={"jsonrpc": "2.0", "id": 1,
                                                      "method": "GetTask", "params": {"id": "x"}})  # fmt: skip
    assert card["name"] == "Anvyl"
    assert card["supportedInterfaces"] == [
        {"url": f"{url}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    ]
    assert card["capabilities"]["streaming"] is True
    scheme = card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]
    assert scheme["scheme"] == "Bearer" and "ANVYL_API_KEYS" in scheme["description"]
    assert card["securityRequirements"] == [{"schemes": {"bearer": {}}}]
    assert [skill["id"] for skill in card["skills"]] == ["anvyl"]
    assert refused.status_code == 401


async def test_named_agents_are_skills_of_the_extended_card(
    make_orchestrator: OrchestratorFactory,
) -> None:
    async with a2a_anvyl(make_orchestrator) as url:
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as http:
            created = await http.post(f"{url}/agents", json={"name": "coder", "provider": "ollama"})
            assert created.status_code == 201, created.text
        async with a2a_client(url, streaming=False) as client:
            card = await client.get_extended_agent_card(GetExtendedAgentCardRequest())
    assert [skill.id for skill in card.skills] == ["anvyl", "coder"]


async def test_send_then_get_answers_the_anvyl_task(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with a2a_anvyl(make_orchestrator) as url, a2a_client(url, streaming=False) as client:
        (answer,) = await send(client, message("list files", repo_url=str(sample_repo)))
        task = answer.task
        fetched = await client.get_task(GetTaskRequest(id=task.id))
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as http:
            anvyl_task = (await http.get(f"{url}/tasks/{task.id}")).json()
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert "README.md" in result_text(task)
    assert result_text(task) == anvyl_task["result"]
    assert anvyl_task["status"] == "succeeded" and anvyl_task["query"] == "list files"
    assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
    assert result_text(fetched) == result_text(task)
    assert task.context_id == anvyl_task["workspace_id"]
    assert [part.text for part in task.history[0].parts] == ["list files"]


async def test_streaming_gives_the_tasks_steps_then_its_result(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with a2a_anvyl(make_orchestrator) as url, a2a_client(url, streaming=True) as client:
        responses = await send(client, message("show git status", repo_url=str(sample_repo)))
    kinds = [response.WhichOneof("payload") for response in responses]
    assert kinds[0] == "task"
    assert responses[0].task.status.state in (
        TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING,
    )  # fmt: skip
    parts = [part for r in responses if r.HasField("status_update")
             and r.status_update.status.state == TaskState.TASK_STATE_WORKING
             for part in r.status_update.status.message.parts]  # fmt: skip
    steps = [json_format.MessageToDict(p.data) for p in parts if p.WhichOneof("content") == "data"]
    assert "tool.call" in [step["type"] for step in steps]
    assert kinds[-2:] == ["artifact_update", "status_update"]
    assert responses[-2].artifact_update.artifact.artifact_id == "result"
    assert responses[-2].artifact_update.artifact.parts[0].text
    final = responses[-1].status_update
    assert final.status.state == TaskState.TASK_STATE_COMPLETED
    assert final.task_id == responses[0].task.id


async def test_cancel_stops_a_running_task(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with a2a_anvyl(make_orchestrator) as url, a2a_client(url, streaming=False) as client:
        request = message("run `sleep 317`", repo_url=str(sample_repo))
        request.configuration.return_immediately = True
        (answer,) = await send(client, request)
        task_id = answer.task.id
        assert answer.task.status.state in (
            TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING,
        )  # fmt: skip
        async with asyncio.timeout(30):
            while (await client.get_task(GetTaskRequest(id=task_id))).status.state != (
                TaskState.TASK_STATE_WORKING
            ):
                await asyncio.sleep(0.05)
        cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
        with pytest.raises(TaskNotCancelableError, match="already ended"):
            await client.cancel_task(CancelTaskRequest(id=task_id))
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    assert cancelled.status.message.parts[0].text == "cancelled by request"


async def test_a_wrong_or_missing_key_is_refused(
    make_orchestrator: OrchestratorFactory,
) -> None:
    async with a2a_anvyl(make_orchestrator) as url:
        for token in (None, "wrong-key"):
            async with a2a_client(url, streaming=False, token=token) as client:
                with pytest.raises(A2AClientError, match="401"):
                    await send(client, message("list files"))


async def test_bad_json_rpc_input_answers_a_json_rpc_error(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    v1 = {**AUTH, "A2A-Version": "1.0"}
    calls: list[tuple[Any, int]] = [
        (b"{not json", -32700),
        (b"\xff\xfe", -32700),
        ([1, 2], -32600),
        ({"jsonrpc": "2.0", "id": 1, "method": "NoSuchMethod", "params": {}}, -32601),
        ({"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": "no-such-task"}},
         -32001),
        ({"jsonrpc": "2.0", "id": 3, "method": "SendMessage", "params": {"message": 5}}, -32602),
        ({"jsonrpc": "2.0", "id": 4, "method": "SendMessage",
          "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": " "}]}}},
         -32602),
        ({"jsonrpc": "2.0", "id": 5, "method": "SendMessage",
          "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}],
                                 "metadata": {"timeout_s": -1}}}}, -32602),
        ({"jsonrpc": "2.0", "id": 6, "method": "SendMessage",
          "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}],
                                 "metadata": {"repo_url": "/no/such/repo"}}}}, -32602),
        ({"jsonrpc": "2.0", "id": 7, "method": "CancelTask", "params": {"id": ""}}, -32001),
    ]  # fmt: skip
    messages: dict[str, str] = {}
    async with a2a_anvyl(make_orchestrator) as url, httpx.AsyncClient(timeout=30) as http:
        for body, code in calls:
            if isinstance(body, bytes):
                response = await http.post(f"{url}/a2a", content=body, headers=v1)
            else:
                response = await http.post(f"{url}/a2a", json=body, headers=v1)
            assert response.status_code == 200, (body, response.text)
            answer = response.json()
            assert answer["jsonrpc"] == "2.0" and answer["error"]["code"] == code, (body, answer)
            assert answer["error"]["message"]
            messages[str(answer.get("id"))] = answer["error"]["message"]
    # Invalid params say what to fix, and where.
    assert messages["4"].startswith("message.parts: no text part")
    assert messages["5"].startswith("metadata.timeout_s: ")
    assert messages["6"].startswith("repo_url: ")


async def test_the_models_text_streams_as_working_updates(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer
) -> None:
    reply = ScriptedReply(content="Every host answers; disks are 40% full.")
    reply.chunk_size = 5
    model.push(reply)
    async with a2a_anvyl(make_orchestrator) as url, a2a_client(url, streaming=True) as client:
        responses = await send(client, message("How are the hosts?"))
    pieces = [part.text for r in responses if r.HasField("status_update")
              and r.status_update.status.state == TaskState.TASK_STATE_WORKING
              for part in r.status_update.status.message.parts
              if part.WhichOneof("content") == "text"]  # fmt: skip
    assert "".join(pieces) == "Every host answers; disks are 40% full."
    artifacts = [r.artifact_update.artifact for r in responses if r.HasField("artifact_update")]
    assert [a.artifact_id for a in artifacts] == ["result"]
    assert artifacts[0].parts[0].text == "Every host answers; disks are 40% full."
    assert responses[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


def test_the_routes_names_are_the_sdks() -> None:
    """The routes name the SDK's paths and methods without importing it (see routes.py)."""
    from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
    from a2a.utils import constants

    from anvyl.orchestrator.a2a import routes

    assert tuple(sorted(JsonRpcDispatcher.METHOD_TO_MODEL)) == routes.METHODS
    assert routes.CARD_PATH == constants.AGENT_CARD_WELL_KNOWN_PATH
    assert routes.VERSION_HEADER == constants.VERSION_HEADER
