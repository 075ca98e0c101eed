"""`ask_a2a_agent` against a real a2a-sdk server on loopback (the SDK's DefaultRequestHandler, its
in-memory task store and JSON-RPC routes, a small AgentExecutor of this test), and against Anvyl."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
)
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from anvyl.orchestrator.a2a.client import A2AError, ask_a2a_agent
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from tests.helpers import free_port, serving
from tests.orchestrator.conftest import OrchestratorFactory
from tests.orchestrator.test_a2a_server import KEY, a2a_anvyl

TOKEN = "other-agent-token"


class EchoExecutor(AgentExecutor):
    """`echo X` answers `echo: X` as an artifact; `slow` works until cancelled; `fail` fails;
    `reply X` answers a plain message without a task."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        query = context.get_user_input()
        if query.startswith("reply "):
            await event_queue.enqueue_event(new_text_message(f"reply: {query[6:]}"))
            return
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if query == "slow":
            await asyncio.sleep(60)
        if query == "fail":
            await updater.failed(updater.new_agent_message([Part(text="the disk is full")]))
            return
        await updater.add_artifact([Part(text=f"echo: {query.removeprefix('echo ')}")],
                                   name="answer")  # fmt: skip
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None
        self.cancelled.append(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id or "").cancel()


class BearerOnly:
    """The other agent's auth: its card is public, its JSON-RPC endpoint wants the token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        if (scope["type"] == "http" and scope["method"] == "POST"
                and headers.get(b"authorization") != f"Bearer {TOKEN}".encode()):  # fmt: skip
            await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


@asynccontextmanager
async def other_agent(*, streaming: bool) -> AsyncIterator[tuple[str, EchoExecutor]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    card = AgentCard(
        name="echo", description="echoes", version="1.0.0",
        supported_interfaces=[AgentInterface(url=f"{url}/rpc", protocol_binding="JSONRPC",
                                             protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=streaming),
        default_input_modes=["text/plain"], default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
    )  # fmt: skip
    executor = EchoExecutor()
    handler = DefaultRequestHandler(executor, InMemoryTaskStore(), card)
    app = Starlette(routes=[*create_agent_card_routes(card),
                            *create_jsonrpc_routes(handler, rpc_url="/rpc")])  # fmt: skip
    async with serving(BearerOnly(app), port=port) as served:
        assert served == url
        yield url, executor


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "polling"])
async def test_the_final_answer_of_an_a2a_agent(streaming: bool) -> None:
    async with other_agent(streaming=streaming) as (url, _):
        answer = await ask_a2a_agent(url, TOKEN, "echo hello there", timeout_s=20)
        direct = await ask_a2a_agent(url, TOKEN, "reply just a message", timeout_s=20)
    assert answer == "echo: hello there"
    assert direct == "reply: just a message"


async def test_a_failed_task_is_an_error_with_its_reason() -> None:
    async with other_agent(streaming=True) as (url, _):
        with pytest.raises(A2AError, match=r"failed: the disk is full") as raised:
            await ask_a2a_agent(url, TOKEN, "fail", timeout_s=20)
    assert raised.value.url == url and url in str(raised.value)


async def test_a_wrong_token_is_a_clear_error() -> None:
    async with other_agent(streaming=True) as (url, _):
        for token in ("wrong", None):
            with pytest.raises(A2AError, match="refused the token") as raised:
                await ask_a2a_agent(url, token, "echo hi", timeout_s=20)
            assert url in str(raised.value) and "401" in str(raised.value)


async def test_a_slow_agent_costs_the_timeout_and_its_task_is_cancelled() -> None:
    async with other_agent(streaming=True) as (url, executor):
        started = time.monotonic()
        with pytest.raises(A2AError, match=r"no answer within 1\.5s") as raised:
            await ask_a2a_agent(url, TOKEN, "slow", timeout_s=1.5)
        elapsed = time.monotonic() - started
        async with asyncio.timeout(10):
            while not executor.cancelled:
                await asyncio.sleep(0.05)
    assert url in str(raised.value)
    assert elapsed < 1.5 + 5, elapsed  # the timeout, plus at most the best-effort cancel


async def test_an_unreachable_agent_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(A2AError, match="Agent Card") as raised:
        await ask_a2a_agent(url, TOKEN, "echo hi", timeout_s=5)
    assert url in str(raised.value)


async def test_ask_anvyl_over_a2a(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer
) -> None:
    """One Anvyl asking another: the other's model answers (a scripted model, the real OpenAI wire
    protocol), through A2A; the query reaches that model as sent."""
    model.push(ScriptedReply(content="All 3 hosts are healthy."))
    async with a2a_anvyl(make_orchestrator) as url:
        answer = await ask_a2a_agent(url, KEY, "How are the hosts doing?", timeout_s=60)
        with pytest.raises(A2AError, match="refused the token"):
            await ask_a2a_agent(url, "wrong", "How are the hosts doing?", timeout_s=60)
    assert answer == "All 3 hosts are healthy."
    assert "How are the hosts doing?" in str(model.requests[0].body)
