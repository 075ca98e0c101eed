"""An orchestrator app per test, with its real lifespan (migrations, workspace backend)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from anvyl.orchestrator.api.app import Services, create_app
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
