"""Task API benchmark (issue 3): POST /orchestrate (background, 202) and GET /tasks/{id} latency and
throughput under 32 concurrent clients, and the queue's added delay from enqueue to start.

    uv run python bench/task_api_bench.py                          # the three set-ups below
    uv run python bench/task_api_bench.py --setups sqlite --rates 50 100

Set-ups (each a real `anvyl serve`, its own processes, on a fresh database; local workspace
backend, built-in planner, "list files" tasks on a git repo made by the bench):
  sqlite          one process: the API and 4 task slots (the embedded default);
  postgres        the same on PostgreSQL;
  postgres-split  an API-only process (ANVYL_MAX_CONCURRENT_TASKS=0) that the clients talk to, and
                  a task process; PostgreSQL LISTEN/NOTIFY hands new tasks over;
  postgres-x2     (opt-in) `anvyl serve --workers 2`: two processes, each API and task slots.

Measures, per set-up, in this order:
  1. enqueue -> start with a free task slot: tasks sent one at a time in sync mode; the stored
     created_at -> started_at;
  2. GET /health (the HTTP floor), GET /tasks/{id}, POST /orchestrate mode=background:
     - 1 client, closed loop (the next request when the previous answer is in);
     - 32 clients, paced: together --rates requests per second, each client on its own Poisson
       schedule; latency counts from the scheduled send time, so a request that waited for its
       client's previous one is charged the wait (no coordinated omission);
     - 32 clients, closed loop: the saturation throughput; latency there is 32 / throughput
       (Little's law), a property of the capacity rather than of one request.
  The background POSTs all go to one workspace, so the task slots work through that backlog (one task
  at a time) while the later measures run: an orchestrator with work to do. With
  --behind-long-task they queue behind a long task instead and the task slots stay idle: the API path
  alone.

The clients are aiohttp sessions in this process (one connection each), sharing the machine's CPUs
with the server: their CPU per request is printed. Everything created (processes, temp dir,
databases) is removed at the end, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
import httpx

from common import (
    free_port,
    fresh_postgres,
    interrupt,
    kill_processes_mentioning,
    make_git_repo,
    serving_process,
)

TARGET_P50_MS, TARGET_P99_MS, TARGET_START_MS = 10.0, 50.0, 50.0
SETUPS = ("sqlite", "postgres", "postgres-split", "postgres-x2")
SERVER_GROUPS: list[int] = []  # process groups of the running `anvyl serve` processes


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def group_cpu_seconds(groups: list[int]) -> float:
    """User + system CPU of every process in these process groups (servers and their workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@contextlib.contextmanager
def anvyl_serve(env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> Iterator[str]:
    """`anvyl serve` in its own process group; yields its URL once /health answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "anvyl.orchestrator", "serve", "--port", str(port), *args]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANVYL_")} | env
    with serving_process(argv, f"{url}/health", log, env=environment, new_session=True,
                         stop_timeout_s=30) as process:  # fmt: skip
        SERVER_GROUPS.append(process.pid)  # its own session: the group id is its pid
        try:
            yield url
        finally:
            SERVER_GROUPS.remove(process.pid)


@contextlib.asynccontextmanager
async def start_setup(setup: str, tmp: Path) -> AsyncIterator[str]:
    """Start a set-up's server processes; yield the URL the clients use."""

    def env(database_url: str, name: str, **extra: str) -> dict[str, str]:
        return {"ANVYL_DATABASE_URL": database_url, "ANVYL_DATA_DIR": str(tmp / f"data-{name}"),
                "ANVYL_WORKSPACE_BACKEND": "local", "ANVYL_LOG_FORMAT": "json",
                "ANVYL_INSTANCE": f"bench-{secrets.token_hex(3)}", **extra}  # fmt: skip

    with contextlib.ExitStack() as stack:
        if setup == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp / 'anvyl.db'}"
            yield stack.enter_context(anvyl_serve(env(url, setup), tmp / f"{setup}.log"))
            return
        async with fresh_postgres() as url:
            if setup == "postgres":
                yield stack.enter_context(anvyl_serve(env(url, setup), tmp / f"{setup}.log"))
            elif setup == "postgres-x2":
                yield stack.enter_context(
                    anvyl_serve(env(url, setup), tmp / f"{setup}.log", ("--workers", "2"))
                )
            else:  # postgres-split: the task process first, then the API-only one
                stack.enter_context(anvyl_serve(env(url, "tasks"), tmp / "tasks.log"))
                yield stack.enter_context(anvyl_serve(
                    env(url, "api", ANVYL_MAX_CONCURRENT_TASKS="0"), tmp / "api.log"))  # fmt: skip
            stack.close()  # stop the servers before the database is dropped


@dataclass
class Load:
    latencies: list[float]
    wall: float
    errors: int
    server_cpu: float
    client_cpu: float

    def cell(self) -> str:
        n = len(self.latencies)
        p50, p99 = pct(self.latencies, 0.5) * 1e3, pct(self.latencies, 0.99) * 1e3
        errors = f", {self.errors} errors" if self.errors else ""
        return (f"{n / self.wall:.0f} req/s, p50 {p50:.1f} / p99 {p99:.1f} ms, CPU/req server "
                f"{self.server_cpu / n * 1e3:.1f} client {self.client_cpu / n * 1e3:.1f} ms{errors}")  # fmt: skip

    def meets_target(self) -> bool:
        return (pct(self.latencies, 0.5) * 1e3 < TARGET_P50_MS
                and pct(self.latencies, 0.99) * 1e3 < TARGET_P99_MS and not self.errors)  # fmt: skip


Request = Callable[[aiohttp.ClientSession, str], Awaitable[bool]]


async def run_load(url: str, request: Request, *, clients: int, per_client: int = 0,
                   rate: float = 0.0, duration: float = 0.0) -> Load:  # fmt: skip
    """Closed loop (`per_client` requests each, back to back) or paced (`rate` per second in all,
    Poisson arrivals per client, for `duration` seconds; latency from the scheduled send time)."""
    latencies: list[float] = []
    errors = 0

    async def one_client() -> None:
        nonlocal errors
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(60)
        ) as http:
            await request(http, url)  # open the connection; not measured
            await ready.wait()
            if not rate:
                for _ in range(per_client):
                    started = time.perf_counter()
                    errors += not await request(http, url)
                    latencies.append(time.perf_counter() - started)
                return
            start = time.perf_counter()
            due = start + random.expovariate(rate / clients)
            while due < start + duration:
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                errors += not await request(http, url)
                latencies.append(time.perf_counter() - due)
                due += random.expovariate(rate / clients)

    ready = asyncio.Event()
    jobs = [asyncio.create_task(one_client()) for _ in range(clients)]
    await asyncio.sleep(0.5)  # connections open
    groups = list(SERVER_GROUPS)
    cpu0, own0, started = group_cpu_seconds(groups), time.process_time(), time.perf_counter()
    ready.set()
    await asyncio.gather(*jobs)
    wall = time.perf_counter() - started
    return Load(latencies, wall, errors, group_cpu_seconds(groups) - cpu0,
                time.process_time() - own0)  # fmt: skip


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def bench_setup(
    setup: str, args: argparse.Namespace, tmp: Path, repo: Path
) -> dict[str, str]:
    rows: dict[str, str] = {}
    verdicts: list[str] = []
    async with start_setup(setup, tmp) as url:
        print(f"[{setup}] serving at {url}", file=sys.stderr)
        body = {"query": "list files", "repo_url": str(repo)}
        async with httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as http:
            first = (await http.post("/orchestrate", json=body)).json()  # starts the worker
            assert first["status"] == "succeeded", first
            delays, ids = [], []
            for _ in range(args.delay_tasks):
                task = (await http.post("/orchestrate", json=body)).json()
                assert task["status"] == "succeeded", task
                ids.append(task["task_id"])
                delays.append(
                    (parse_ts(task["started_at"]) - parse_ts(task["created_at"])).total_seconds()
                )
        rows[f"enqueue -> start, created_at -> started_at (n={len(delays)})"] = (
            f"p50 {pct(delays, .5) * 1e3:.1f} / p99 {pct(delays, .99) * 1e3:.1f} / "
            f"max {max(delays) * 1e3:.1f} ms")  # fmt: skip

        background = body | {"mode": "background"}
        if args.behind_long_task:
            # A long task holds the workspace: the POSTed tasks queue behind it and do not run, so
            # the figures are those of the API path alone (idle task slots, a growing queue).
            async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as http:
                long = body | {"query": "run `sleep 3600`", "mode": "background"}
                # Tasks of a workspace run in arrival order: every later one waits for this one.
                assert (await http.post("/orchestrate", json=long)).status_code == 202

        async def health(http: aiohttp.ClientSession, base: str) -> bool:
            async with http.get(f"{base}/health") as response:
                await response.read()
                return response.status == 200

        async def get_task(http: aiohttp.ClientSession, base: str) -> bool:
            async with http.get(f"{base}/tasks/{random.choice(ids)}") as response:
                await response.read()
                return response.status == 200

        async def post(http: aiohttp.ClientSession, base: str) -> bool:
            async with http.post(f"{base}/orchestrate", json=background) as response:
                await response.read()
                return response.status == 202

        c = args.clients
        for name, request, rates in (("GET /health (HTTP floor)", health, []),
                                     ("GET /tasks/{id}", get_task, args.rates),
                                     ("POST /orchestrate background", post, args.rates)):  # fmt: skip
            print(f"[{setup}] {name}", file=sys.stderr)
            load = await run_load(url, request, clients=1, per_client=args.single_n)
            rows[f"{name}: 1 client, closed loop x {args.single_n}"] = load.cell()
            held = []
            for rate in rates:
                load = await run_load(url, request, clients=c, rate=rate, duration=args.paced_s)
                rows[f"{name}: {c} clients, paced {rate:g} req/s in all"] = load.cell()
                if load.meets_target():
                    held.append(f"{rate:g}")
            load = await run_load(url, request, clients=c, per_client=args.per_client)
            rows[f"{name}: {c} clients, closed loop x {args.per_client} (saturation)"] = load.cell()
            if request is post:
                verdicts.append(f"held at {', '.join(held)} req/s (paced)" if held
                                else "held at none of the paced rates")  # fmt: skip
                verdicts.append("held in the closed loop" if load.meets_target()
                                else "missed in the closed loop")  # fmt: skip
    rows["target for POST background under 32 clients"] = "; ".join(verdicts)
    return rows


async def main_async(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="anvyl-task-bench-"))
    tables: dict[str, dict[str, str]] = {}
    try:
        repo = make_git_repo(tmp / "repo")
        for setup in args.setups:
            tables[setup] = await bench_setup(setup, args, tmp, repo)
            kill_processes_mentioning(str(tmp))
    finally:
        kill_processes_mentioning(str(tmp))
        if args.keep_logs:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    load_avg = os.getloadavg()
    queue = ("the POSTed tasks wait behind a long task (task slots idle)" if args.behind_long_task
             else "the task slots work through the POSTed tasks meanwhile")  # fmt: skip
    print(f"\ntask API bench ({queue}): {os.cpu_count()} CPUs, load average {load_avg[0]:.1f} "
          f"{load_avg[1]:.1f}; targets: POST background p50 < {TARGET_P50_MS:.0f} ms, p99 < "
          f"{TARGET_P99_MS:.0f} ms under {args.clients} clients; enqueue -> start < "
          f"{TARGET_START_MS:.0f} ms\n")  # fmt: skip
    setups = list(tables)
    measures = list(tables[setups[0]])
    widths = [
        max(map(len, measures)),
        *(max(len(s), *map(len, tables[s].values())) for s in setups),
    ]
    print(
        "| "
        + " | ".join(h.ljust(w) for h, w in zip(["measure", *setups], widths, strict=True))
        + " |"
    )
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for measure in measures:
        cells = [measure, *(tables[s].get(measure, "-") for s in setups)]
        print("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS[:3]))
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rates", type=float, nargs="*", default=[50, 100, 200, 400],
                        help="paced loads, requests per second from all clients together")  # fmt: skip
    parser.add_argument("--paced-s", type=float, default=8.0, help="seconds per paced load")
    parser.add_argument("--per-client", type=int, default=100, help="closed loop, per client")
    parser.add_argument("--single-n", type=int, default=300, help="requests of the 1-client run")
    parser.add_argument("--delay-tasks", type=int, default=100)
    parser.add_argument("--behind-long-task", action="store_true",
                        help="the POSTed tasks wait behind a long task of their workspace (task slots "
                        "idle): the API path alone")  # fmt: skip
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    # Ctrl-C and SIGTERM raise KeyboardInterrupt inside the event loop, so every `finally` (and
    # asyncio.run's cancellation of the remaining tasks) cleans up.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
