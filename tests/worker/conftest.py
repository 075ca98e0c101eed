"""Fixtures for the worker tests: the real app on a real loopback port (uvicorn, in the test's event
loop), and a real container from the agent image."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from anvyl.worker.app import WorkerConfig, create_app
from anvyl.worker.client import WorkerClient

AGENT_IMAGE = os.environ.get("ANVYL_AGENT_IMAGE", "anvyl/agent:dev")
TEST_LABEL = "anvyl.test=worker"


@dataclass
class Worker:
    url: str
    token: str
    workspace: Path
    client: WorkerClient
    http: (
        httpx.AsyncClient
    )  # raw HTTP with the token, for requests the typed client refuses to build

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        # ensure_ascii: odd unicode (lone surrogates) travels as escapes, as a real client may send
        return await self.http.post(
            path, content=json.dumps(body), headers={"content-type": "application/json"}
        )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
async def worker(workspace: Path) -> AsyncIterator[Worker]:
    """The worker app served by uvicorn on 127.0.0.1:<free port>; always shut down."""
    token = secrets.token_urlsafe(24)
    app = create_app(WorkerConfig(workspace=workspace, token=token))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        async with (
            WorkerClient(url, token) as client,
            httpx.AsyncClient(base_url=url, headers=auth, trust_env=False) as http,
        ):
            yield Worker(
                url=url, token=token, workspace=workspace.resolve(), client=client, http=http
            )
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone: it is dead, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())


# ------------------------------------------------------------------------------------ docker


def _docker_ok() -> str | None:
    if shutil.which("docker") is None:
        return "docker CLI not installed"
    probe = subprocess.run(
        ["docker", "image", "inspect", AGENT_IMAGE], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        return (
            f"image {AGENT_IMAGE} not found (build it: BASE_IMAGE=anvyl/base:bookworm "
            f"scripts/build-images.sh): {probe.stderr.strip()[:200]}"
        )
    return None


@dataclass
class Container:
    name: str
    url: str
    token: str
    client: WorkerClient

    def docker_exec(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "exec", self.name, *argv], capture_output=True, text=True, timeout=timeout
        )


def start_container(name: str, token: str, volume: str, *, init: bool = True) -> str:
    """`docker run` the worker like the workspace manager does; answers its base URL."""
    subprocess.run(
        [
            "docker", "run", "-d", "--name", name, *(["--init"] if init else []), "--read-only",
            "--tmpfs", "/tmp:rw,exec,size=256m", "--label", TEST_LABEL,
            "--memory", "1g", "--pids-limit", "512", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "-e", f"ANVYL_WORKER_TOKEN={token}", "-v", f"{volume}:/workspace",
            "-p", "127.0.0.1::8000", AGENT_IMAGE,
        ],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    port = subprocess.run(
        ["docker", "port", name, "8000/tcp"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout.split()[0].rsplit(":", 1)[1]  # fmt: skip
    return f"http://127.0.0.1:{port}"


def remove_container(name: str, volume: str) -> None:
    subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, timeout=60)
    subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, timeout=60)


def wait_healthy(url: str, timeout: float = 30.0) -> float:
    started = time.monotonic()
    with httpx.Client(trust_env=False, timeout=1.0) as http:
        while time.monotonic() - started < timeout:
            try:
                if http.get(f"{url}/health").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"worker at {url} not healthy after {timeout}s")


@pytest.fixture(scope="session")
def container_info() -> Iterator[tuple[str, str, str]]:
    reason = _docker_ok()
    if reason:
        pytest.fail(f"the container tests need Docker and the worker image: {reason}")
    name = f"anvyl-test-worker-{secrets.token_hex(4)}"
    volume = f"{name}-ws"
    token = secrets.token_urlsafe(24)
    try:
        url = start_container(name, token, volume)
        wait_healthy(url)
        yield name, url, token
    finally:
        remove_container(name, volume)


@pytest.fixture
async def container(container_info: tuple[str, str, str]) -> AsyncIterator[Container]:
    name, url, token = container_info
    async with WorkerClient(url, token) as client:
        yield Container(name=name, url=url, token=token, client=client)
