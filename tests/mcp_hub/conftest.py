"""Fixtures that run the real hub (uvicorn on a free loopback port) and connect real MCP clients."""

import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import docker
import httpx2
import pytest
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from anvyl.mcp_hub.app import create_hub
from anvyl.mcp_hub.settings import HubSettings

TEST_TOKEN = "test-token-0123456789abcdef"
TEST_LABEL_KEY = "anvyl.test"
TEST_LABEL_VALUE = "mcp-hub"
BASE_IMAGE = os.environ.get("ANVYL_TEST_BASE_IMAGE", "anvyl/base:bookworm")
_START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class BackgroundServer:
    """An ASGI app served by uvicorn in a thread of this process, on its own event loop."""

    def __init__(self, app: Any, port: int, **config: Any) -> None:
        self.port = port
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                timeout_graceful_shutdown=5,
                **config,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@contextlib.contextmanager
def serve_app(app: Any, **config: Any) -> Iterator[BackgroundServer]:
    server = BackgroundServer(app, free_port(), **config)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class RunningHub:
    def __init__(self, server: BackgroundServer, settings: HubSettings) -> None:
        self.server = server
        self.settings = settings

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def url(self, server_name: str) -> str:
        return f"{self.base_url}/{server_name}/mcp"


HubFactory = Callable[..., RunningHub]


@pytest.fixture
def start_hub() -> Iterator[HubFactory]:
    """Start hubs with given settings; every one is stopped at teardown, even on failure."""
    stack = contextlib.ExitStack()

    def start(**overrides: Any) -> RunningHub:
        settings = HubSettings(_env_file=None, **{"token": TEST_TOKEN, **overrides})
        server = stack.enter_context(serve_app(create_hub(settings).app))
        return RunningHub(server, settings)

    with stack:
        yield start


@pytest.fixture
def hub(start_hub: HubFactory) -> RunningHub:
    return start_hub()


@contextlib.asynccontextmanager
async def mcp_session(
    url: str, token: str | None = TEST_TOKEN, response_statuses: list[int] | None = None
) -> AsyncIterator[ClientSession]:
    """The SDK's own streamable-HTTP client, with the bearer token when given.

    `response_statuses` collects the HTTP status of every response the transport sees.
    """

    async def record_status(response: httpx2.Response) -> None:
        if response_statuses is not None:
            response_statuses.append(response.status_code)

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(30.0),
            event_hooks={"response": [record_status]},
        ) as http_client,
        streamable_http_client(url, http_client=http_client) as streams,
        ClientSession(streams[0], streams[1], read_timeout_seconds=60) as session,
    ):
        await session.initialize()
        yield session


def remove_test_containers(client: docker.DockerClient) -> None:
    for container in client.containers.list(
        all=True, filters={"label": f"{TEST_LABEL_KEY}={TEST_LABEL_VALUE}"}
    ):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@pytest.fixture
def docker_client() -> Iterator[docker.DockerClient]:
    """The real local daemon; every container labelled for these tests is removed afterwards."""
    client = docker.from_env(timeout=60)
    try:
        client.images.get(BASE_IMAGE)
        yield client
    finally:
        remove_test_containers(client)
        client.close()


def result_text(result: CallToolResult) -> str:
    """The text of a tool result's first content block (where error messages are)."""
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text
