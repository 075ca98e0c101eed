"""Helpers the benchmarks share: free ports, killing orphaned processes, Ctrl-C inside asyncio."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path


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
