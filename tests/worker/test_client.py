"""The worker client when the worker is gone or silent: a clear WorkerUnreachable, within its timeout,
never a hang."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from anvyl.worker.client import WorkerClient, WorkerUnreachable
from anvyl.worker.models import Health

TOKEN = "client-test-token-0123456789"


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A loopback server that takes the connection and the request, and never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_silent_worker_is_unreachable_after_the_read_timeout(silent_server: str) -> None:
    async with WorkerClient(silent_server, TOKEN) as client:
        started = time.monotonic()
        with pytest.raises(WorkerUnreachable, match="unreachable"):
            await client.health(timeout=0.3)
        assert time.monotonic() - started < 5
        # Every call has a read timeout, also one that names none (the client's default).
        quick = WorkerClient(silent_server, TOKEN, read_timeout_s=0.3)
        async with quick:
            with pytest.raises(WorkerUnreachable):
                # (wait_for turns a hang into a failure of this test: a TimeoutError of its own)
                await asyncio.wait_for(quick._call("GET", "/health", Health), 10)


async def test_a_refused_connection_is_unreachable_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    async with WorkerClient(f"http://127.0.0.1:{port}", TOKEN) as client:
        started = time.monotonic()
        with pytest.raises(WorkerUnreachable, match=f"127.0.0.1:{port} unreachable"):
            await client.health()
        assert time.monotonic() - started < 5


async def test_a_closed_client_refuses_to_call() -> None:
    client = WorkerClient("http://127.0.0.1:9", TOKEN)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.health()
