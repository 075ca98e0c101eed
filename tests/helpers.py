"""Helpers for tests and benchmarks (one place for both): server processes waited for and stopped,
`anvyl serve` in a subprocess, uvicorn in-process, a throw-away PostgreSQL database, SSE parsing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn


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
def serving_process(
    argv: Sequence[str],
    ready_url: str,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
    timeout_s: float = 60.0,
    stop_timeout_s: float = 20.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process writing to `log` (a file: a full pipe would block it), yielded once
    `ready_url` answers 200, and stopped at the end whatever happens: SIGTERM (to its whole group
    with `new_session`), then SIGKILL. A process that exits or stays unready fails with its log."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv), env=dict(env) if env is not None else None, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=new_session,
        )  # fmt: skip

    def signal_it(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if new_session:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)

    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[:3]} exited with {process.returncode}:\n"
                                   f"{log.read_text(errors='replace')[-3000:]}")  # fmt: skip
            try:
                if httpx.get(ready_url, timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:3]} not ready in {timeout_s:.0f} s:\n"
                                   f"{log.read_text(errors='replace')[-3000:]}")  # fmt: skip
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            signal_it(signal.SIGTERM)
            try:
                process.wait(timeout=stop_timeout_s)
            except subprocess.TimeoutExpired:
                signal_it(signal.SIGKILL)
                process.wait()


@contextmanager
def running_server(
    env: dict[str, str],
    log: Path,
    args: tuple[str, ...] = (),
    command: Sequence[str] = (sys.executable, "-m", "anvyl.orchestrator"),
) -> Iterator[ServerProcess]:
    """`anvyl serve` in its own process group, stopped (or killed) at the end whatever happens."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving_process(
        [*command, "serve", "--port", str(port), *args], f"{url}/health", log,
        env=os.environ | {"ANVYL_LOG_FORMAT": "json"} | env, new_session=True,
    ) as process:  # fmt: skip
        yield ServerProcess(process, url, log)


@asynccontextmanager
async def fresh_postgres_database(admin_url: str) -> AsyncIterator[str]:
    """A new, empty database on the PostgreSQL server at `admin_url` (postgresql://...); yields
    its SQLAlchemy URL (asyncpg) and drops it afterwards, its connections closed by force."""
    import asyncpg

    name = f"anvyl_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(admin_url, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def serving(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve an (already started) ASGI app with uvicorn on a free loopback port in this event loop."""
    port = port or free_port()
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
