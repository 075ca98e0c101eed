"""Memory tests: the database backend on SQLite and PostgreSQL, and a real embeddings endpoint (the
gpt-oss service's /v1/embeddings, served by uvicorn on a free loopback port)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from anvyl.gpt_oss.embeddings import DEFAULT_MODEL, create_embeddings_app
from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.memory.embeddings import Embedder
from tests.mcp_hub.conftest import serve_app


@pytest.fixture(scope="session")
def embeddings_url() -> Iterator[str]:
    with serve_app(create_embeddings_app()) as server:
        yield f"http://127.0.0.1:{server.port}/v1"


@pytest.fixture
async def embedder(embeddings_url: str) -> AsyncIterator[Embedder]:
    found = Embedder(embeddings_url, DEFAULT_MODEL)
    yield found
    await found.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()
