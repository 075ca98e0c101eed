"""A real `anvyl serve` process: tasks survive a restart, and the restarted server adopts its container."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "anvyl.orchestrator", "serve", "--port", str(port)],
            env=os.environ | env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_task_is_readable_after_a_restart_and_the_container_is_adopted(
    database_url: str, docker_instance: str, sample_repo: Path, tmp_path: Path
) -> None:
    env = {
        "ANVYL_DATABASE_URL": database_url,
        "ANVYL_DATA_DIR": str(tmp_path / "data"),
        "ANVYL_INSTANCE": docker_instance,
        "ANVYL_WORKSPACE_BACKEND": "docker",
    }
    body = {"query": "List files in current directory", "repo_url": str(sample_repo)}
    with running_server(env, tmp_path / "server.log") as url:
        first = httpx.post(f"{url}/orchestrate", json=body, timeout=120).json()
    assert first["status"] == "succeeded", first["error"]

    with running_server(env, tmp_path / "server.log") as url:
        again = httpx.get(f"{url}/tasks/{first['task_id']}", timeout=10)
        second = httpx.post(f"{url}/orchestrate", json=body, timeout=120).json()
    assert again.status_code == 200
    assert again.json() == first
    assert second["status"] == "succeeded"
    assert second["metadata"]["workspace"]["reused"] is True
