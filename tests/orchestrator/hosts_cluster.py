"""Real orchestrators on loopback for the host tests and the host benchmark: `anvyl serve`
processes, each with its own data directory, database and API key, that can be stopped and started
again on the same port (and so the same URL)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import ServerProcess, free_port, serving_process


@dataclass
class Node:
    """One orchestrator: `host_id` is its own id (ANVYL_HOST_ID), `key` its API key."""

    host_id: str
    data_dir: Path
    env: dict[str, str]
    key: str
    port: int = field(default_factory=free_port)
    server: ServerProcess | None = None
    _stack: contextlib.ExitStack | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Node:
        assert self._stack is None, f"{self.host_id} runs already"
        stack = contextlib.ExitStack()
        log = self.data_dir.parent / f"{self.host_id}.log"
        env = os.environ | {"ANVYL_LOG_FORMAT": "json"} | self.env
        process = stack.enter_context(serving_process(
            [sys.executable, "-m", "anvyl.orchestrator", "serve", "--port", str(self.port)],
            f"{self.url}/health", log, env=env, new_session=True,
        ))  # fmt: skip
        self.server = ServerProcess(process, self.url, log)
        self._stack = stack
        return self

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self.server = None

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"},
                            timeout=timeout, trust_env=False)  # fmt: skip


def start_all(nodes: list[Node]) -> None:
    """Start them at once (each start is mostly waiting for imports and migrations); if one
    fails, the others are stopped and the error is raised."""
    with ThreadPoolExecutor(len(nodes) or 1) as pool:
        futures = [pool.submit(node.start) for node in nodes]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        for node in nodes:
            node.stop()
        raise errors[0]  # type: ignore[misc]


def make_node(root: Path, host_id: str, *, database_url: str | None = None,
              extra_env: dict[str, str] | None = None) -> Node:  # fmt: skip
    data = root / host_id
    env = {
        "ANVYL_DATA_DIR": str(data),
        "ANVYL_WORKSPACE_BACKEND": "local",
        "ANVYL_INSTANCE": f"hosts-{host_id}-{os.getpid()}",
        "ANVYL_HOST_ID": host_id,
        "ANVYL_HOST_NAME": f"machine-{host_id}",
        "ANVYL_API_KEYS": f"key-{host_id}",
        "ANVYL_HOSTS_CHECK_INTERVAL_S": "1",
    }
    if database_url is not None:
        env["ANVYL_DATABASE_URL"] = database_url
    return Node(host_id, data, env | (extra_env or {}), f"key-{host_id}")


@contextlib.contextmanager
def silent_port() -> Iterator[str]:
    """A loopback address that accepts connections and never answers (a host that hangs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def closed_port() -> str:
    """A loopback address nothing listens on (a host that is down)."""
    return f"http://127.0.0.1:{free_port()}"


def add_host(node: Node, host: Node | str, host_id: str, token: str | None = None,
             **extra: Any) -> dict[str, Any]:  # fmt: skip
    url = host.url if isinstance(host, Node) else host
    body = {"host_id": host_id, "name": f"host {host_id}", "url": url, **extra}
    if token is not None:
        body["token"] = token
    with node.client() as http:
        response = http.post("/agent/hosts", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer
