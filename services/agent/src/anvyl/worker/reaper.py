"""A minimal init for when the worker itself is PID 1 (a container started without `--init`, or a
platform such as Cloud Run that has no such flag).

PID 1 must reap orphans, or every process a command leaves behind stays a `<defunct>` zombie. The
asyncio child watcher only waits for the worker's own children, so the worker cannot do it itself:
PID 1 forks, the child serves, and PID 1 only reaps and forwards signals (what tini does).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

_FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def become_init_if_pid1() -> None:
    """Return in the process that should serve; when this is PID 1, never return from PID 1."""
    if os.getpid() != 1 or os.environ.get("ANVYL_WORKER_NO_REAPER") == "1":
        return
    child = os.fork()
    if child == 0:
        return  # the server runs here, as PID 2

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    while True:
        try:
            pid, status = os.wait()  # reaps the server and every orphan handed to PID 1
        except ChildProcessError:
            sys.exit(0)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            sys.exit(128 - code if code < 0 else code)  # killed by a signal: 128 + its number
