"""An orchestrator app per test, with its real lifespan (migrations, workspace backend), and a
scripted model (real OpenAI wire protocol) configured as its only endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from anvyl.orchestrator.api.app import Services, create_app
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply, ScriptedToolCall
from anvyl.orchestrator.settings import Settings


class Orchestrator:
    def __init__(self, app: FastAPI, http: httpx.AsyncClient, services: Services) -> None:
        self.app = app
        self.http = http
        self.services = services

    async def orchestrate(self, query: str, repo_url: str, **extra: Any) -> httpx.Response:
        return await self.http.post(
            "/orchestrate", json={"query": query, "repo_url": repo_url, **extra}
        )


OrchestratorFactory = Callable[..., AbstractAsyncContextManager[Orchestrator]]


@pytest.fixture
def make_orchestrator(tmp_path: Path, database_url: str, instance: str) -> OrchestratorFactory:
    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Orchestrator]:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "instance": instance,
            "log_format": "json",
        }
        settings = Settings(**(values | overrides))
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://anvyl.test") as http:
                yield Orchestrator(app, http, app.state.services)

    return make


def call(name: str, **arguments: Any) -> ScriptedToolCall:
    return ScriptedToolCall(name, json.dumps(arguments))


def tools(*calls: ScriptedToolCall) -> ScriptedReply:
    return ScriptedReply(tool_calls=list(calls))


def slow(reply: ScriptedReply, pause_s: float = 0.6) -> ScriptedReply:
    """Stream in 4-character pieces: wait before the first one and again after the first two."""
    reply.chunk_size = 4
    reply.stall_before_first_token = pause_s
    reply.stall_after_chunks = 2
    reply.stall_seconds = pause_s
    return reply


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    """A scripted model behind the real OpenAI wire protocol, configured as the only endpoint
    (through ANVYL_CONFIG, so an `anvyl serve` started by the test uses it too)."""
    with ScriptedLLMServer() as server:
        config = tmp_path / "anvyl.yaml"
        config.write_text(
            "models:\n  - name: scripted\n    provider: openai\n"
            f"    base_url: {server.openai_url}\n    model: scripted-model\n    api_key: test-key\n"
            "routing:\n  primary: scripted\n"
        )
        monkeypatch.setenv("ANVYL_CONFIG", str(config))
        yield server
