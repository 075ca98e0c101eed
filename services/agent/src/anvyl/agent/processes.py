"""Running commands in their own process group, so a timeout or cancel kills everything they started."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from anvyl.agent.models import ExecResult

_DRAIN_TIMEOUT_S = 5.0


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Read a stream to its end, keeping at most `cap` bytes (the rest is drained, not kept)."""
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > room:
            truncated = True
    return bytes(kept), truncated


async def run_command(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stdin: str | None,
    max_output_bytes: int,
) -> ExecResult:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # own process group: killpg reaches grandchildren too
    )
    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(
        _read_capped(proc.stdout, max_output_bytes), _read_capped(proc.stderr, max_output_bytes)
    )

    async def feed_and_wait() -> int:
        if stdin is not None and proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin.encode())
                await proc.stdin.drain()
            proc.stdin.close()
        return await proc.wait()

    timed_out = False
    try:
        code = await asyncio.wait_for(feed_and_wait(), timeout_s)
    except TimeoutError:
        timed_out = True
        _kill_group(proc)
        code = await proc.wait()
    except BaseException:
        # Cancelled (client went away, task cancelled): never leave the process group running.
        _kill_group(proc)
        readers.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        raise
    # The leader is gone; anything it left in its group must not outlive the request (and must
    # close the pipes so the readers see end of file).
    _kill_group(proc)
    try:
        (out, out_cut), (err, err_cut) = await asyncio.wait_for(readers, _DRAIN_TIMEOUT_S)
    except TimeoutError:  # a process escaped the group (setsid) and holds the pipe open
        out, out_cut, err, err_cut = b"", True, b"", True
    stderr = err.decode(errors="replace")
    if timed_out:
        stderr += f"\n[anvyl] killed: timed out after {timeout_s}s"
    return ExecResult(
        exit_code=code,
        stdout=out.decode(errors="replace"),
        stderr=stderr,
        duration_s=round(time.perf_counter() - started, 6),
        timed_out=timed_out,
        truncated=out_cut or err_cut,
    )
