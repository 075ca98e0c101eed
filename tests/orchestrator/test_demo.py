"""`anvyl demo` (what scripts/quickstart.sh runs): a real orchestrator, a real Docker worker, a real
repository; stopped by a signal at any point it leaves no orchestrator and no worker behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from anvyl.orchestrator.cli.demo import DEMO_INSTANCE
from tests.conftest import remove_instance_resources
from tests.helpers import ANVYL, free_port


@pytest.fixture
def demo_env(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """The demo's settings (its data apart from the user's), and its workers removed afterwards
    should a test fail before checking that the demo removed them itself."""
    yield os.environ | {"ANVYL_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
                        "COLUMNS": "200", "ANVYL_WORKSPACE_BACKEND": "docker"}  # fmt: skip
    remove_instance_resources(docker_client, DEMO_INSTANCE)


def demo_workers(client: docker.DockerClient) -> list[str]:
    return [c.name for c in client.containers.list(
        all=True, filters={"label": f"anvyl.instance={DEMO_INSTANCE}"})]  # fmt: skip


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def stop_leftovers(demo: subprocess.Popen[str], servers: list[int]) -> None:
    """A failed test still removes what the demo left: the demo, then its orchestrator's session."""
    if demo.poll() is None:
        demo.kill()
        demo.wait()
    for pid in servers:
        if not gone(pid):
            os.killpg(pid, signal.SIGKILL)


def start_demo(env: dict[str, str], port: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([ANVYL, "demo", "--port", str(port), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def read_until(demo: subprocess.Popen[str], marker: str) -> str:
    assert demo.stdout is not None
    seen = ""
    while marker not in seen:
        line = demo.stdout.readline()
        assert line, f"the demo ended before printing {marker!r}: {seen}"
        seen += line
    return seen


def test_the_demo_answers_with_a_real_worker_and_removes_it(
    demo_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    port = free_port()
    result = subprocess.run([ANVYL, "demo", "--port", str(port)], env=demo_env, text=True,
                            capture_output=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "README.md" in result.stdout and "succeeded" in result.stdout
    server_pid = int(re.search(r"\(pid (\d+)\)", result.stdout)[1])  # type: ignore[index]
    assert gone(server_pid) and demo_workers(docker_client) == []


def test_sigterm_while_the_task_runs_stops_the_orchestrator_and_removes_the_worker(
    demo_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    port = free_port()
    demo = start_demo(demo_env, port, "--query", "run `sleep 120`")
    server_pid = 0
    workers_while_running: list[str] = []
    try:
        seen = read_until(demo, "POST /orchestrate")
        server_pid = int(re.search(r"\(pid (\d+)\)", seen)[1])  # type: ignore[index]
        # A task is "running" from the moment it is claimed; its worker container comes a moment
        # later (the workspace is prepared first), so wait for both.
        deadline = time.monotonic() + 120
        while not (httpx.get(f"http://127.0.0.1:{port}/tasks", params={"status": "running"},
                             timeout=5).json()["tasks"]
                   and (workers_while_running := demo_workers(docker_client))):  # fmt: skip
            assert time.monotonic() < deadline, "the demo's task never started its worker"
            time.sleep(0.2)
        demo.send_signal(signal.SIGTERM)
        out, _ = demo.communicate(timeout=90)
    finally:
        stop_leftovers(demo, [server_pid] if server_pid else [])
    assert len(workers_while_running) == 1
    assert demo.returncode == 128 + signal.SIGTERM, seen + out
    assert "stopped by SIGTERM" in out
    assert gone(server_pid) and demo_workers(docker_client) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_sigterm_while_waiting_for_the_orchestrator_stops_it(demo_env: dict[str, str]) -> None:
    port = free_port()
    demo = start_demo(demo_env, port)
    servers: list[int] = []
    try:
        read_until(demo, "sample repository")
        deadline = time.monotonic() + 30
        while not (servers := children(demo.pid)):
            assert time.monotonic() < deadline, "the demo never started its orchestrator"
            time.sleep(0.02)
        # At once: the orchestrator takes seconds to import and migrate, the demo polls its health.
        demo.send_signal(signal.SIGTERM)
        out, _ = demo.communicate(timeout=60)
    finally:
        stop_leftovers(demo, servers)
    assert demo.returncode == 128 + signal.SIGTERM, out
    assert all(gone(pid) for pid in servers)
