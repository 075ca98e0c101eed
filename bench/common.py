"""Helpers the benchmarks share: free ports, killing orphaned processes, Ctrl-C inside asyncio,
a throw-away PostgreSQL database, a small git repository for tasks to work on."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

# The helpers the tests use too live in one place, tests/helpers.py (the repository is the root).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import free_port, fresh_postgres_database, serving_process

__all__ = ["free_port", "fresh_postgres", "interrupt", "kill_processes_mentioning",
           "make_git_repo", "serving_process"]  # fmt: skip
POSTGRES_URL = os.environ.get(
    "ANVYL_BENCH_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)


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


def fresh_postgres() -> contextlib.AbstractAsyncContextManager[str]:
    """A new database on the server at ANVYL_BENCH_POSTGRES_URL, as an asyncpg SQLAlchemy URL;
    dropped at the end (its connections closed by force)."""
    return fresh_postgres_database(POSTGRES_URL)


def make_git_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for name, text in {"README.md": "# bench\n", "src/app.py": "print('hi')\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run([*git, *args], cwd=root, check=True, timeout=30)
    return root
