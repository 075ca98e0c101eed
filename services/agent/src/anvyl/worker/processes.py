"""Running commands in their own process group, so a timeout, a kill or a cancel stops everything
they started.

Every command is the leader of a new session (`start_new_session`), so `killpg` reaches its children
and grandchildren. When the leader exits, what it left running in its group is killed too: a
request never leaves processes behind (a command that wants to outlive its request must `setsid`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from anvyl.worker.models import ExecResult

_DRAIN_TIMEOUT_S = 2.0
_READ_CHUNK = 65536

# Called with ("stdout" | "stderr", bytes) for every piece of output kept (within the cap).
OutputCallback = Callable[[str, bytes], Awaitable[None]]


def make_inherited_fds_private() -> None:
    """Mark every descriptor above stderr non-inheritable (those the worker itself inherited from
    whoever started it), so that commands spawned with close_fds=False receive only 0, 1 and 2."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


class ExecIdInUse(ValueError):
    """Another running command already has this exec_id."""


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class RunningExec:
    exec_id: str
    pid: int
    started: float = field(default_factory=time.monotonic)
    killed: bool = False


class ExecRegistry:
    """The commands running now that were given an exec_id, so that they can be killed by id."""

    def __init__(self) -> None:
        self._running: dict[str, RunningExec] = {}

    def add(self, exec_id: str, pid: int) -> RunningExec:
        if exec_id in self._running:
            raise ExecIdInUse(f"a command with exec_id {exec_id!r} is already running")
        entry = RunningExec(exec_id, pid)
        self._running[exec_id] = entry
        return entry

    def remove(self, exec_id: str) -> None:
        self._running.pop(exec_id, None)

    def kill(self, exec_id: str) -> bool:
        entry = self._running.get(exec_id)
        if entry is None:
            return False
        entry.killed = True
        kill_group(entry.pid)
        return True

    def ids(self) -> list[str]:
        return sorted(self._running)

    def kill_all(self) -> None:
        for exec_id in list(self._running):
            self.kill(exec_id)


async def _returncode(proc: asyncio.subprocess.Process) -> int:
    """The exit code once the leader has exited (the child watcher sets it a moment later)."""
    delay = 0.0001
    while proc.returncode is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return proc.returncode


async def leader_exited(proc: asyncio.subprocess.Process) -> None:
    """Wait for the process itself to exit.

    `Process.wait()` also waits for the pipes to close, which a background child holding stdout
    delays forever; a pidfd says when the leader exits, whatever its children do. Without pidfd
    (old kernels, gVisor) the return code is polled."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(proc.pid)
    except (OSError, AttributeError):  # already exited and reaped, or no pidfd here
        await _returncode(proc)
        return
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, on_exit)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


class _CappedReader:
    """Reads one pipe to its end, keeping at most `cap` bytes (the rest is drained and dropped)."""

    def __init__(self, name: str, cap: int, on_output: OutputCallback | None) -> None:
        self.name = name
        self.cap = cap
        self.kept = bytearray()
        self.truncated = False
        self.on_output = on_output

    async def run(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_READ_CHUNK):
            room = self.cap - len(self.kept)
            piece = chunk[:room] if room > 0 else b""
            if len(chunk) > room:
                self.truncated = True
            if piece:
                self.kept += piece
                if self.on_output is not None:
                    await self.on_output(self.name, piece)


async def run_command(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stdin: str | bytes | None,
    max_output_bytes: int,
    exec_id: str | None = None,
    registry: ExecRegistry | None = None,
    on_output: OutputCallback | None = None,
) -> ExecResult:
    """Run `argv` to its end, its timeout, its kill or the caller's cancel; always answer (or raise
    CancelledError) with the whole process group gone."""
    started = time.perf_counter()
    if exec_id is not None and registry is not None and exec_id in registry.ids():
        raise ExecIdInUse(f"a command with exec_id {exec_id!r} is already running")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # own process group: killpg reaches grandchildren too
        # Every descriptor Python opens is non-inheritable (PEP 446) and create_app marks the ones
        # the worker inherited non-inheritable too, so none reach the command anyway; skipping the
        # close-all pass saves ~1.5 ms a spawn in a container whose seccomp refuses close_range.
        close_fds=False,
    )
    entry = registry.add(exec_id, proc.pid) if exec_id is not None and registry else None
    assert proc.stdout is not None and proc.stderr is not None
    out = _CappedReader("stdout", max_output_bytes, on_output)
    err = _CappedReader("stderr", max_output_bytes, on_output)
    readers = asyncio.gather(out.run(proc.stdout), err.run(proc.stderr))

    async def feed_and_wait() -> None:
        if stdin is not None and proc.stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(data)
                await proc.stdin.drain()
            proc.stdin.close()
        await leader_exited(proc)

    timed_out = False
    try:
        try:
            await asyncio.wait_for(feed_and_wait(), timeout_s)
        except TimeoutError:
            timed_out = True
            kill_group(proc.pid)
        # The leader is gone; anything it left in its group must not outlive the request (and must
        # close the pipes so the readers see end of file).
        kill_group(proc.pid)
        try:
            await asyncio.wait_for(asyncio.shield(readers), _DRAIN_TIMEOUT_S)
        except TimeoutError:
            # A process escaped the group (setsid) and holds a pipe open: answer with what we have.
            readers.cancel()
            out.truncated = err.truncated = True
        code = await _returncode(proc)
    except BaseException:
        # Cancelled (client went away, task cancelled) or failed: never leave the group running.
        kill_group(proc.pid)
        readers.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(_returncode(proc))
        raise
    finally:
        if entry is not None and registry is not None:
            registry.remove(entry.exec_id)
    stderr = err.kept.decode(errors="replace")
    if timed_out:
        stderr += f"\n[anvyl] killed: timed out after {timeout_s}s"
    killed = entry is not None and entry.killed
    if killed:
        stderr += "\n[anvyl] killed on request"
    return ExecResult(
        exit_code=code,
        stdout=out.kept.decode(errors="replace"),
        stderr=stderr,
        duration_s=round(time.perf_counter() - started, 6),
        timed_out=timed_out,
        truncated=out.truncated or err.truncated,
        killed=killed,
        exec_id=exec_id,
    )
