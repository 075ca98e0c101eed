"""Helpers for tests that need real HTTP servers: an `anvyl serve` subprocess, or uvicorn in-process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def kill_hard(self) -> None:
        """kill -9 the whole process group: no shutdown code runs, as when a host dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


# The `anvyl` console script of the environment running the tests: what a user runs.
ANVYL = str(Path(sys.executable).with_name("anvyl"))


@contextmanager
def running_server(
    env: dict[str, str],
    log: Path,
    args: tuple[str, ...] = (),
    command: Sequence[str] = (sys.executable, "-m", "anvyl.orchestrator"),
) -> Iterator[ServerProcess]:
    """`anvyl serve` in its own process group, stopped (or killed) at the end whatever happens."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port), *args],
            env=os.environ | {"ANVYL_LOG_FORMAT": "json"} | env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve an (already started) ASGI app with uvicorn on a free loopback port in this event loop."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn stopped during start-up"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def read_sse(response: httpx.Response, limit: int | None = None) -> list[dict[str, Any]]:
    """Parse an SSE response into events ({id, event, data}); stop after `limit` events."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in current:
                current["data"] = json.loads(current["data"])
                events.append(current)
                if limit is not None and len(events) >= limit:
                    break
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            current[field] = value.removeprefix(" ")
    return events
