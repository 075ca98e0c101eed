"""`anvyl demo`: the README's first command. A real orchestrator, a real worker, a real repository."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

from anvyl.orchestrator.cli.common import print_task
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.workspaces.manager import create_backend

DEMO_INSTANCE = "demo"

_SAMPLE_FILES = {
    "README.md": "# sample-service\n\nA tiny service used by `anvyl demo`.\n",
    "app.py": 'def handler(event):\n    return {"status": "ok", "echo": event}\n',
    "tests/test_app.py": "from app import handler\n\n\ndef test_handler():\n    assert handler(1)['status'] == 'ok'\n",
    "pyproject.toml": '[project]\nname = "sample-service"\nversion = "0.1.0"\n',
}


def create_sample_repo(root: Path) -> Path:
    repo = root / "sample-service"
    for name, text in _SAMPLE_FILES.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git = ["git", "-c", "user.name=Anvyl Demo", "-c", "user.email=demo@anvyl.invalid"]
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "-m", "Initial commit"],
    ):
        subprocess.run([*git, *args], cwd=repo, check=True, timeout=30)
    return repo


class Stopped(Exception):
    """The demo got SIGTERM, SIGINT or SIGHUP: stop the orchestrator it started, then exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn the stop signals into `Stopped` (raised where the demo is, even in a blocking call), so
    that its `finally` stops the server; the server runs in its own session and would outlive us."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """While cleaning up: a second Ctrl-C must not leave the server or the workspace behind."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the orchestrator exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the orchestrator did not become healthy within {timeout_s:.0f}s")


def run_demo(*, port: int, query: str, console: Console) -> int:
    try:
        with _stop_on_signals():
            return _run(port, query, console)
    except Stopped as stopped:
        console.print(
            f"[yellow]stopped by {stopped}: the orchestrator and the demo workspace are gone[/]"
        )
        return 128 + stopped.signum


def _run(port: int, query: str, console: Console) -> int:
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="anvyl-demo-") as tmp:
        repo = create_sample_repo(Path(tmp))
        console.print(f"[bold]1.[/] sample repository: {repo}")
        env = dict(
            os.environ, ANVYL_PORT=str(port), ANVYL_HOST="127.0.0.1", ANVYL_INSTANCE=DEMO_INSTANCE
        )
        log_path = Path(tmp) / "orchestrator.log"
        server: subprocess.Popen[bytes] | None = None
        try:
            with log_path.open("wb") as log_file:
                server = subprocess.Popen(
                    [sys.executable, "-m", "anvyl.orchestrator", "serve"],
                    env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            with console.status("[bold]2.[/] starting the orchestrator ..."):
                _wait_healthy(url, server)
            console.print(f"[bold]2.[/] orchestrator listening on {url} (pid {server.pid})")
            console.print(
                f"[bold]3.[/] POST /orchestrate {{query: {query!r}, repo_url: {str(repo)!r}}}"
            )
            with console.status(
                "    running the task (the first run starts the repository's worker) ..."
            ):
                response = httpx.post(f"{url}/orchestrate", json={"query": query, "repo_url": str(repo)},
                                      timeout=httpx.Timeout(600, connect=5), trust_env=False)  # fmt: skip
            task = response.json()
            if response.status_code != 200:
                console.print(f"[red]{response.status_code}: {task.get('detail')}[/]")
                return 1
            print_task(task)
            again = httpx.get(f"{url}/tasks/{task['task_id']}", timeout=10, trust_env=False).json()
            console.print(f"[bold]4.[/] GET /tasks/{task['task_id']} -> {again['status']}")
            return 0 if task["status"] == "succeeded" else 1
        except RuntimeError as exc:
            console.print(f"[red]{exc}[/]\n{log_path.read_text(errors='replace')[-3000:]}")
            return 1
        finally:
            with _signals_ignored():
                _stop_server(server)
                asyncio.run(_remove_demo_workspaces())


def _stop_server(server: subprocess.Popen[bytes] | None) -> None:
    if server is None or server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)  # a graceful stop: running tasks are released
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # its own session: take anything it started too
        server.wait()


async def _remove_demo_workspaces() -> None:
    """The sample repository is temporary, so its workspace goes too (a real one stays warm)."""
    settings = Settings(instance=DEMO_INSTANCE)
    backend = create_backend(settings)
    try:
        for worker in await backend.list_owned():
            await backend.remove(worker.workspace_id, purge=True)
    finally:
        await backend.close()
