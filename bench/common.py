"""Helpers the benchmarks share: free ports, killing orphaned processes, Ctrl-C inside asyncio,
a throw-away PostgreSQL database, a small git repository for tasks to work on."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

POSTGRES_URL = os.environ.get(
    "ANVYL_BENCH_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_processes_mentioning(marker: str) -> None:
    """Kill (by pid) any process left whose command line names `marker` (orphaned workers)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def interrupt(signum: int, _frame: object) -> None:
    """Signal handler: SIGINT and SIGTERM raise KeyboardInterrupt inside the event loop, so every
    `finally` (and asyncio.run's cancellation of the remaining tasks) cleans up."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """A new database on the server at ANVYL_BENCH_POSTGRES_URL, as an asyncpg SQLAlchemy URL;
    dropped at the end (its connections closed by force)."""
    import asyncpg

    name = f"anvyl_bench_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def make_git_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for name, text in {"README.md": "# bench\n", "src/app.py": "print('hi')\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run([*git, *args], cwd=root, check=True, timeout=30)
    return root
