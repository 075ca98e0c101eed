"""The worker as a real subprocess (`anvyl-agent serve`), the way the local backend runs it."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

from anvyl.worker.client import WorkerClient
from anvyl.worker.models import ExecRequest

from .conftest import pid_alive, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_subprocess_health_exec_and_clean_shutdown(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    port = free_port()
    env = {"PATH": os.environ["PATH"], "ANVYL_WORKER_TOKEN": token, "SECRET_OF_THE_HOST": "x"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anvyl.worker",
            "serve",
            "--port",
            str(port),
            "--workspace",
            str(tmp_path / "ws"),
        ],
        env=env,
        start_new_session=True,
    )
    try:
        async with WorkerClient(f"http://127.0.0.1:{port}", token) as client:
            for _ in range(300):
                try:
                    await client.health()
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            assert (await client.health()).workspace == str((tmp_path / "ws").resolve())
            env_seen = await client.shell("env")
            assert "SECRET_OF_THE_HOST" not in env_seen.stdout and token not in env_seen.stdout
            running = asyncio.create_task(
                client.exec(
                    ExecRequest(
                        command="sleep 300 & echo $! > child.pid; wait",
                        exec_id="long",
                        timeout_s=600,
                    )
                )
            )
            pidfile = tmp_path / "ws" / "child.pid"
            assert await wait_for(
                lambda: pidfile.exists() and pidfile.read_text().strip() != "", 10
            )
            child = int(pidfile.read_text())
            proc.send_signal(signal.SIGTERM)  # the backend stops the worker: no command outlives it
            await asyncio.to_thread(proc.wait, 20)
            assert await wait_for(lambda: not pid_alive(child), 5)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_missing_token_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anvyl.worker", "serve", "--workspace", str(tmp_path)],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "ANVYL_WORKER_TOKEN" in result.stderr
