"""`GET /health` (open: the manager polls it before it has a token to send) and `GET /info`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anvyl.worker import API_VERSION
from anvyl.worker.models import DiskUsage, Health, Info, MemoryUsage
from anvyl.worker.routes.common import Guard, WorkerState, json_response

INFO_DU_TIMEOUT_S = 5.0


def _git_version() -> str | None:
    try:
        out = subprocess.run(
            ["git", "--version"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().removeprefix("git version ") or None


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _memory() -> MemoryUsage:
    rss = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    # cgroup v2, then v1; "max" or a huge v1 value means no limit.
    used = _read_int("/sys/fs/cgroup/memory.current")
    limit = _read_int("/sys/fs/cgroup/memory.max")
    if used is None:
        used = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")
        limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    if limit is not None and limit >= 1 << 60:
        limit = None
    if used is None:
        with contextlib.suppress(OSError, ValueError):
            info = {
                k: int(v.split()[0]) * 1024
                for k, v in (
                    line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines()
                )
            }
            used = info["MemTotal"] - info["MemAvailable"]
            limit = limit or info["MemTotal"]
    return MemoryUsage(worker_rss_bytes=rss, used_bytes=used, limit_bytes=limit)


async def _workspace_bytes(workspace: Path) -> int | None:
    """`du -sb` of the workspace, bounded in time (None when it takes too long)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "du",
            "-sb",
            "--",
            str(workspace),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), INFO_DU_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    first = out.split(b"\t", 1)[0]
    return int(first) if first.isdigit() else None


def routes(state: WorkerState, guard: Guard) -> list[Route]:
    workspace = state.workspace
    try:
        worker_version = metadata.version("anvyl-agent")
    except metadata.PackageNotFoundError:
        worker_version = "0+unknown"
    git_version: list[str | None] = []  # asked once, on the first /info

    async def health(_: Request) -> Response:
        return json_response(
            Health(
                version=API_VERSION,
                workspace=str(workspace),
                uptime_s=round(time.monotonic() - state.started, 3),
            )
        )

    async def info(_: Request) -> Response:
        if not git_version:
            git_version.append(await asyncio.to_thread(_git_version))
        usage = shutil.disk_usage(workspace)
        return json_response(
            Info(
                worker_version=worker_version,
                api_version=API_VERSION,
                python_version=platform.python_version(),
                git_version=git_version[0],
                uptime_s=round(time.monotonic() - state.started, 3),
                workspace=str(workspace),
                uid=os.getuid(),
                disk=DiskUsage(
                    total_bytes=usage.total,
                    used_bytes=usage.used,
                    free_bytes=usage.free,
                    workspace_bytes=await _workspace_bytes(workspace),
                ),
                memory=_memory(),
                running_execs=state.registry.ids(),
            )
        )

    return [
        Route("/health", health, methods=["GET"]),  # open on purpose, see the module docstring
        Route("/info", guard(info), methods=["GET"]),
    ]
