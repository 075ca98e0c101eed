"""Workspace benchmark (issue 4): the docker and local backends through the orchestrator's own code.

    uv run python bench/workspace_bench.py          # image from ANVYL_AGENT_IMAGE, default anvyl/agent:dev
    uv run python bench/workspace_bench.py --cold-n 10 --exec-n 200 --docker-n 30

Measured with `DockerBackend` / `LocalBackend` + `WorkspaceManager._healthy_worker` (the path every
task takes: cached client + /health when warm; backend.ensure_running + the /health poll otherwise):
- cold start: no container -> healthy worker (volume + container created, started, /health polled);
  the container and its volume are removed between runs; plus a breakdown of where the time goes
  (create, start, first healthy /health, Docker's own `docker run true`, the worker's imports);
- warm reuse: the manager's path for a running workspace;
- tool round trip: `true` via POST /exec through `WorkerClient`, against `docker exec CONTAINER true`
  (docker CLI subprocess) and the docker SDK's `exec_run` on the same container;
- a 1 MB file read through the worker API (text, and binary as base64);
- 10 workspaces started in parallel: wall time until all 10 are healthy;
- the same cold start / warm reuse / exec figures for the `local` backend (bubblewrap when present).

Everything is labelled anvyl.instance=<unique> and removed at the end (containers, volumes, worker
processes, the temp dir), also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import docker

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.store import TaskStore
from anvyl.orchestrator.workspaces.config import LocalWorkspaceConfig
from anvyl.orchestrator.workspaces.docker import DockerBackend
from anvyl.orchestrator.workspaces.local import LocalBackend, bwrap_path
from anvyl.orchestrator.workspaces.manager import WorkspaceManager, create_backend
from anvyl.orchestrator.workspaces.repos import RepoRef, parse_repo
from anvyl.worker.client import WorkerClient
from common import interrupt, kill_processes_mentioning

IMAGE = os.environ.get("ANVYL_AGENT_IMAGE", "anvyl/agent:dev")
Row = tuple[str, str, float, float, str]  # measure, unit, median, p95, target


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[
        min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))
    ]


def ms_row(label: str, samples: list[float], target: str = "-") -> Row:
    median, p95 = stats(samples)
    return (f"{label} (n={len(samples)})", "ms", median * 1e3, p95 * 1e3, target)


async def no_events(_type: str, _data: dict[str, Any]) -> None:
    return None


def repo(name: str) -> RepoRef:
    # A remote-looking URL: nothing is cloned here, the worker only needs to start.
    return parse_repo(f"https://example.invalid/bench/{name}.git")


async def timed(fn: Callable[[], Awaitable[Any]], n: int, warmup: int = 0) -> list[float]:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


async def wait_healthy(client: WorkerClient, timeout: float = 60, poll_s: float = 0.005) -> None:
    """/health polled every 5 ms: when the worker really answers (the manager backs off from
    10 ms to 200 ms between polls, so its cold start also holds part of a poll interval)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.health(timeout=1.0)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(poll_s)


async def cold_starts(manager: WorkspaceManager, prefix: str, n: int) -> list[float]:
    samples = []
    for i in range(n):
        ref = repo(f"{prefix}-cold-{i}")
        started = time.perf_counter()
        await manager._healthy_worker(ref, no_events)
        samples.append(time.perf_counter() - started)
        await manager._forget(ref.workspace_id)
        await manager.backend.remove(ref.workspace_id, purge=True)
    return samples


async def tool_rows(manager: WorkspaceManager, label: str, args: argparse.Namespace) -> tuple[list[Row], RepoRef, WorkerClient]:  # fmt: skip
    ref = repo(f"{label}-warm")
    client, _ = await manager._healthy_worker(ref, no_events)
    rows = [ms_row(f"{label}: warm reuse (cached client + /health)",
                   await timed(lambda: manager._healthy_worker(ref, no_events), args.exec_n, 20),
                   "< 10 ms")]  # fmt: skip
    exec_samples = await timed(lambda: client.run("true"), args.exec_n, 20)
    rows.append(ms_row(f"{label}: exec `true` via WorkerClient POST /exec", exec_samples, "< 5 ms"))
    text = ("0123456789abcdef" * 63 + "\n") * 1040  # ~1 MB of text lines
    await client.write_file("bench/1mb.txt", text)
    await client.write_file("bench/1mb.bin", os.urandom(1024 * 1024))
    rows.append(ms_row(f"{label}: read 1 MB text file via /files/read",
                       await timed(lambda: client.read_file("bench/1mb.txt"), args.file_n, 2)))  # fmt: skip
    rows.append(ms_row(f"{label}: read 1 MB binary file via read_bytes (base64)",
                       await timed(lambda: client.read_bytes("bench/1mb.bin"), args.file_n, 2)))  # fmt: skip
    return rows, ref, client


def docker_cli(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *argv], capture_output=True, text=True, timeout=120, check=check
    )


async def docker_section(settings: Settings, db: Database, args: argparse.Namespace) -> list[Row]:
    backend = create_backend(settings)
    assert isinstance(backend, DockerBackend)
    manager = WorkspaceManager(settings, db, backend, tasks=TaskStore(db))
    rows: list[Row] = []
    try:
        cold = await cold_starts(manager, "d", args.cold_n)
        rows.append(
            ms_row("docker: cold start, no container -> healthy /health", cold, "< 1000 ms median")
        )
        breakdown = await cold_breakdown(backend, args.breakdown_n)
        rows.extend(breakdown)

        tools, ref, _client = await tool_rows(manager, "docker", args)
        rows.extend(tools)
        exec_median = tools[1][2] / 1e3
        name = backend.container_name(ref.workspace_id)
        cli = await timed(
            lambda: asyncio.to_thread(docker_cli, "exec", name, "true"), args.docker_n, 2
        )
        container = backend.client.containers.get(name)
        sdk = await timed(lambda: asyncio.to_thread(container.exec_run, ["true"]), args.docker_n, 2)
        rows.append(ms_row("docker: `docker exec CONTAINER true` (CLI subprocess)", cli))
        rows.append(ms_row("docker: docker SDK container.exec_run(['true'])", sdk))
        rows.append(("docker: `docker exec` CLI / POST /exec (medians)", "x",
                     stats(cli)[0] / exec_median, float("nan"), ">= 10x"))  # fmt: skip
        rows.append(("docker: SDK exec_run / POST /exec (medians)", "x",
                     stats(sdk)[0] / exec_median, float("nan"), ">= 10x"))  # fmt: skip
        await manager._forget(ref.workspace_id)
        await backend.remove(ref.workspace_id, purge=True)

        parallel = [repo(f"d-par-{i}") for i in range(args.parallel)]
        started = time.perf_counter()
        await asyncio.gather(*(manager._healthy_worker(r, no_events) for r in parallel))
        wall = time.perf_counter() - started
        rows.append((f"docker: {args.parallel} workspaces started in parallel, wall until all healthy",
                     "ms", wall * 1e3, float("nan"), "-"))  # fmt: skip
        for r in parallel:
            await manager._forget(r.workspace_id)
        await asyncio.gather(*(backend.remove(r.workspace_id, purge=True) for r in parallel))
    finally:
        await manager.close()  # closes the clients and the backend
    return rows


async def cold_breakdown(backend: DockerBackend, n: int) -> list[Row]:
    """The same steps as ensure_running, timed one by one, then the worker's own start-up."""
    create, start, inspect, healthy = [], [], [], []
    for i in range(n):
        ref = repo(f"d-steps-{i}")
        t0 = time.perf_counter()
        container = await asyncio.to_thread(backend._create, ref)
        t1 = time.perf_counter()
        await asyncio.to_thread(container.start)
        t2 = time.perf_counter()
        await asyncio.to_thread(container.reload)
        endpoint = backend._endpoint(container, True)
        t3 = time.perf_counter()
        async with backend.worker_client(endpoint) as client:
            await wait_healthy(client)
        t4 = time.perf_counter()
        create.append(t1 - t0)
        start.append(t2 - t1)
        inspect.append(t3 - t2)
        healthy.append(t4 - t3)
        await backend.remove(ref.workspace_id, purge=True)
    rows = [
        ms_row("docker: cold step: volume + container create (SDK)", create),
        ms_row("docker: cold step: container start (SDK, returns when running)", start),
        ms_row("docker: cold step: reload (inspect) for the port", inspect),
        ms_row("docker: cold step: started -> healthy /health (polled every 5 ms)", healthy),
    ]
    floor = []
    for _ in range(n):
        t0 = time.perf_counter()
        await asyncio.to_thread(docker_cli, "run", "--rm", "--label", f"anvyl.instance={backend.instance}",
                                "--entrypoint", "true", backend.config.image)  # fmt: skip
        floor.append(time.perf_counter() - t0)
    rows.append(ms_row("docker: floor: `docker run --rm IMAGE true` (CLI)", floor))
    # Inside the image: interpreter start, and the worker's imports (python -X importtime).
    code = ("import time, subprocess, sys; t=time.perf_counter(); subprocess.run([sys.executable,'-c','pass']);"
            "a=time.perf_counter(); import anvyl.worker.app, uvicorn; b=time.perf_counter();"
            "print(a-t, b-a)")  # fmt: skip
    interp, imports = [], []
    for _ in range(3):
        out = await asyncio.to_thread(docker_cli, "run", "--rm", "--label", f"anvyl.instance={backend.instance}",
                                      "--entrypoint", "python3", backend.config.image, "-c", code)  # fmt: skip
        a, b = out.stdout.split()[-2:]
        interp.append(float(a))
        imports.append(float(b))
    rows.append(ms_row("docker: in image: `python3 -c pass` (interpreter start)", interp))
    rows.append(ms_row("docker: in image: import anvyl.worker.app, uvicorn", imports))
    return rows


async def local_section(settings: Settings, db: Database, args: argparse.Namespace) -> list[Row]:
    backend = create_backend(settings)
    assert isinstance(backend, LocalBackend)
    manager = WorkspaceManager(settings, db, backend, tasks=TaskStore(db))
    sandbox = "bwrap" if bwrap_path(backend.config) else "no sandbox"
    rows: list[Row] = []
    try:
        cold = await cold_starts(manager, "l", args.cold_n)
        rows.append(
            ms_row(
                f"local ({sandbox}): cold start, spawn -> healthy /health", cold, "< 1000 ms median"
            )
        )
        rows.extend(await asyncio.to_thread(local_start_steps, settings))
        tools, _ref, _client = await tool_rows(manager, f"local ({sandbox})", args)
        rows.extend(tools)
        parallel = [repo(f"l-par-{i}") for i in range(args.parallel)]
        started = time.perf_counter()
        await asyncio.gather(*(manager._healthy_worker(r, no_events) for r in parallel))
        wall = time.perf_counter() - started
        rows.append((f"local ({sandbox}): {args.parallel} workspaces started in parallel, wall",
                     "ms", wall * 1e3, float("nan"), "-"))  # fmt: skip
    finally:
        await manager.close()  # closes the clients and stops the workers
    return rows


def import_profile(argv: list[str], top: int = 10) -> list[tuple[str, float]]:
    """`python -X importtime`: the modules with the largest cumulative import time (top two levels)."""
    out = subprocess.run([*argv, "-X", "importtime", "-c", "import anvyl.worker.app, uvicorn"],
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    found = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if len(name) - len(name.lstrip()) <= 3:  # top-level imports and their direct children
            found.append((name.strip(), int(cumulative) / 1e3))
    return sorted(found, key=lambda item: -item[1])[:top]


def local_start_steps(settings: Settings, n: int = 3) -> list[Row]:
    """Where a local cold start goes: interpreter + imports on the host, and bubblewrap's own cost."""
    code = "import time; t=time.perf_counter(); import anvyl.worker.app, uvicorn; print(time.perf_counter()-t)"
    spawn, imports, bwrap = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        spawn.append(time.perf_counter() - t0)
        imports.append(float(out.stdout.split()[-1]))
        if path := bwrap_path(LocalWorkspaceConfig()):
            t0 = time.perf_counter()
            subprocess.run([path, "--die-with-parent", "--unshare-pid", "--ro-bind", "/", "/",
                            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "true"],
                           check=True)  # fmt: skip
            bwrap.append(time.perf_counter() - t0)
    rows = [ms_row("local: step: host python -c 'import anvyl.worker.app, uvicorn', whole process", spawn),
            ms_row("local: step: of which the imports", imports)]  # fmt: skip
    if bwrap:
        rows.append(ms_row("local: step: `bwrap ... true` (sandbox set-up)", bwrap))
    return rows


def remove_instance(instance: str) -> None:
    client = docker.from_env(timeout=60)
    try:
        label = f"anvyl.instance={instance}"
        for container in client.containers.list(all=True, filters={"label": label}):
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True, v=True)
        for volume in client.volumes.list(filters={"label": label}):
            with contextlib.suppress(docker.errors.DockerException):
                volume.remove(force=True)
    finally:
        client.close()


async def main_async(args: argparse.Namespace) -> int:
    instance = f"wb{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix="anvyl-ws-bench-"))
    settings = Settings(instance=instance, agent_image=IMAGE, data_dir=tmp / "data",
                        workspace_backend="docker")  # fmt: skip
    db = Database(
        f"sqlite+aiosqlite:///{tmp / 'unused.db'}"
    )  # the manager's rows are not touched here
    rows: list[Row] = []
    try:
        if "docker" in args.backends:
            rows += await docker_section(settings, db, args)
        if "local" in args.backends:
            rows += await local_section(
                Settings(instance=instance, data_dir=tmp / "data", workspace_backend="local"),
                db,
                args,
            )
    finally:
        await db.close()
        remove_instance(instance)
        kill_processes_mentioning(str(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
    size = docker_cli("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout.strip()
    load = os.getloadavg()
    print(f"\nworkspace bench: image {IMAGE} ({int(size) / 1e6:.0f} MB), {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} {load[1]:.1f}\n")  # fmt: skip
    width = max(len(r[0]) for r in rows)
    twidth = max(len(r[4]) for r in rows)
    print(f"| {'measure':<{width}} | unit | {'median':>9} | {'p95':>9} | {'target':<{twidth}} |")
    print(f"|{'-' * (width + 2)}|------|{'-' * 11}|{'-' * 11}|{'-' * (twidth + 2)}|")
    for label, unit, med, p95, target in rows:
        p = "" if p95 != p95 else f"{p95:.2f}"
        print(f"| {label:<{width}} | {unit:<4} | {med:>9.2f} | {p:>9} | {target:<{twidth}} |")
    if "docker" in args.backends:
        print("\nslowest imports of the worker in the image (python -X importtime, cumulative ms):")
        profile = import_profile(["docker", "run", "--rm", "--label", f"anvyl.instance={instance}",
                                  "--entrypoint", "python3", IMAGE])  # fmt: skip
        remove_instance(instance)
        for name, ms in profile:
            print(f"  {ms:8.1f}  {name}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends", nargs="+", choices=["docker", "local"], default=["docker", "local"]
    )
    parser.add_argument("--cold-n", type=int, default=10)
    parser.add_argument("--breakdown-n", type=int, default=5)
    parser.add_argument("--exec-n", type=int, default=200)
    parser.add_argument("--docker-n", type=int, default=30)
    parser.add_argument("--file-n", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=10)
    args = parser.parse_args()
    if docker_cli("image", "inspect", IMAGE, check=False).returncode != 0:
        print(f"image {IMAGE} not found: BASE_IMAGE=anvyl/base:bookworm scripts/build-images.sh",
              file=sys.stderr)  # fmt: skip
        return 2
    # Ctrl-C and SIGTERM raise KeyboardInterrupt inside the event loop, so every `finally` (and
    # asyncio.run's cancellation of the remaining tasks) cleans up. asyncio's own SIGINT handler
    # only cancels the main task, which a library awaiting in a thread can leave unnoticed.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
