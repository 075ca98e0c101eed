"""Task API benchmark (issue 3): POST /orchestrate (background, 202) and GET /tasks/{id} throughput
and latency under concurrent clients, and the queue's added delay from enqueue to start.

    uv run python bench/task_api_bench.py                   # SQLite and PostgreSQL
    uv run python bench/task_api_bench.py --db sqlite --clients 32 --per-client 2000

The server is a real `anvyl serve` subprocess (its own process, its own event loop; the clients run
in this process), one per database: an SQLite file in a temp dir, and a fresh PostgreSQL database
created and dropped by the bench (ANVYL_BENCH_POSTGRES_URL, default the local server). Workspaces
use the `local` backend (the worker as a subprocess, inside bubblewrap when present); tasks are
"list files" on a small git repo made by the bench, answered by the built-in planner (no model).

Phases, per database, in this order (so that the queue is idle when the delay is measured):
  1. enqueue -> start: --delay-tasks tasks sent one at a time in sync mode (the previous one is
     finished, so a runner is free): task created_at -> started_at as stored, and the mean of the
     server's anvyl_task_queue_wait_seconds histogram over the same tasks;
  2. GET /tasks/{id}: 1 client, then --clients clients, each --per-client requests;
  3. POST /orchestrate mode=background: same. All tasks go to one workspace, so the queue runs them
     one at a time in the background while the requests are measured (a realistic load: an
     orchestrator with work to do), and the backlog is dropped when the server stops.

Everything created (server and worker processes, temp dir, database) is removed at the end, also on
Ctrl-C or failure. The figures are client-side wall times: they include httpx's own cost, which
shares this machine's CPUs with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
POSTGRES_URL = os.environ.get(
    "ANVYL_BENCH_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)
TARGETS = {"enqueue_p50": 10.0, "enqueue_p99": 50.0, "start_delay": 50.0}  # milliseconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def make_git_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for name, text in {"README.md": "# bench\n", "src/app.py": "print('hi')\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run([*git, *args], cwd=root, check=True, timeout=30)
    return root


def kill_processes_mentioning(marker: str) -> None:
    """Kill (by pid) any process left whose command line names our temp dir (orphaned workers)."""
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


@contextlib.contextmanager
def anvyl_serve(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "anvyl.orchestrator", "serve", "--port", str(port)],
            env={k: v for k, v in os.environ.items() if not k.startswith("ANVYL_")} | env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"anvyl serve exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"anvyl serve not up:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.1)
        yield url, process.pid
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.asynccontextmanager
async def fresh_postgres():  # type: ignore[no-untyped-def]
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


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def queue_wait_histogram(http: httpx.AsyncClient) -> tuple[float, float]:
    text = (await http.get("/metrics")).text
    total = count = 0.0
    for line in text.splitlines():
        if m := re.match(r"anvyl_task_queue_wait_seconds_(sum|count) ([0-9.e+-]+)", line):
            if m[1] == "sum":
                total = float(m[2])
            else:
                count = float(m[2])
    return total, count


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """`py-spy record --gil` on the server while the block runs (CPU in Python only), raw format."""
    if out is None:
        yield
        return
    exe = shutil.which("py-spy") or str(Path.home() / ".local/bin/py-spy")
    process = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "250", "--gil",
                                "--format", "raw", "--output", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def profile_summary(path: Path, wall: float, top: int = 10) -> list[str]:
    """Where the server's CPU went: Anvyl's functions and a few library hot spots (inclusive share
    of the samples), then the leaf functions (self share)."""
    if not path.exists():
        return [f"  (no profile written to {path})"]
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
    total = max(total, 1)
    hot = ("orchestrator/", "BaseHTTPMiddleware.__call__ ", "_do_ping", "Transaction.start",
           "serialize_response", "solve_dependencies", "Session.flush", "Session.get ",
           "TaskOut.from_row", "compile")  # fmt: skip
    ranked = sorted(((n, f) for f, n in inclusive.items()
                     if any(h in f for h in hot) and "orchestrator/cli.py" not in f
                     and "orchestrator/__main__" not in f), reverse=True)[:top]  # fmt: skip
    lines = [
        f"  GIL held {total / 250 / wall * 100:.0f}% of the wall time ({total} samples at 250 Hz); inclusive:"
    ]
    lines += [f"  {n / total * 100:5.1f}%  {f}" for n, f in ranked]
    lines.append("  leaf (self) functions:")
    lines += [
        f"  {n / total * 100:5.1f}%  {f}" for f, n in sorted(leaf.items(), key=lambda x: -x[1])[:6]
    ]
    return lines


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Load:
    latencies: list[float]
    wall: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall


async def load(url: str, clients: int, per_client: int, request) -> Load:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def one_client(index: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits,
                                     trust_env=False) as http:  # fmt: skip
            await request(http, index, -1)  # open the connection, not measured
            for i in range(per_client):
                started = time.perf_counter()
                ok = await request(http, index, i)
                latencies.append(time.perf_counter() - started)
                errors += not ok

    started = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(clients)))
    return Load(latencies, time.perf_counter() - started, errors)


async def bench_database(label: str, database_url: str, args: argparse.Namespace,
                         tmp: Path, repo: Path, profiles: dict[str, list[str]]) -> list[tuple[str, str, str]]:  # fmt: skip
    data_dir = tmp / f"data-{label}"
    env = {
        "ANVYL_DATABASE_URL": database_url,
        "ANVYL_DATA_DIR": str(data_dir),
        "ANVYL_WORKSPACE_BACKEND": "local",
        "ANVYL_INSTANCE": f"bench-{secrets.token_hex(3)}",
        "ANVYL_LOG_FORMAT": "json",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    rows: list[tuple[str, str, str]] = []
    with anvyl_serve(env, tmp / f"serve-{label}.log") as (url, pid):
        print(f"[{label}] anvyl serve pid {pid} at {url}", file=sys.stderr)
        async with httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as http:
            body = {"query": "list files", "repo_url": str(repo)}
            first = (await http.post("/orchestrate", json=body)).json()  # starts the worker
            assert first["status"] == "succeeded", first
            # 1. enqueue -> start with a free runner.
            sum0, count0 = await queue_wait_histogram(http)
            delays, ids, sync_lat = [], [], []
            for _ in range(args.delay_tasks):
                started = time.perf_counter()
                task = (await http.post("/orchestrate", json=body)).json()
                sync_lat.append(time.perf_counter() - started)
                assert task["status"] == "succeeded", task
                ids.append(task["task_id"])
                delays.append(
                    (parse_ts(task["started_at"]) - parse_ts(task["created_at"])).total_seconds()
                )
            sum1, count1 = await queue_wait_histogram(http)
        n = args.delay_tasks
        rows.append((f"enqueue -> start, created_at -> started_at (n={n})",
                     f"p50 {pct(delays, .5) * 1e3:.1f} / p99 {pct(delays, .99) * 1e3:.1f} ms"
                     f" / max {max(delays) * 1e3:.1f} ms",
                     f"< {TARGETS['start_delay']:.0f} ms"))  # fmt: skip
        hist = (sum1 - sum0) / max(count1 - count0, 1)
        rows.append((f"enqueue -> start, /metrics queue_wait mean (n={int(count1 - count0)})",
                     f"{hist * 1e3:.1f} ms", f"< {TARGETS['start_delay']:.0f} ms"))  # fmt: skip
        rows.append((f"sync POST /orchestrate 'list files', whole task (n={n})",
                     f"p50 {pct(sync_lat, .5) * 1e3:.1f} / p99 {pct(sync_lat, .99) * 1e3:.1f} ms",
                     "-"))  # fmt: skip

        # 2. GET /tasks/{id}.
        async def get(http: httpx.AsyncClient, c: int, i: int) -> bool:
            response = await http.get(f"/tasks/{ids[(c * 7919 + i) % len(ids)]}")
            return response.status_code == 200

        # 3. POST /orchestrate, background.
        background = body | {"mode": "background"}

        async def post(http: httpx.AsyncClient, c: int, i: int) -> bool:
            response = await http.post("/orchestrate", json=background)
            return response.status_code == 202

        async def health(http: httpx.AsyncClient, c: int, i: int) -> bool:
            return (await http.get("/health")).status_code == 200

        for name, request, target in (("GET /health (floor: HTTP + FastAPI, no DB)", health, None),
                                      ("GET /tasks/{id}", get, None),
                                      ("POST /orchestrate background", post, "enqueue")):  # fmt: skip
            for clients in (1, args.clients):
                per_client = args.per_client if clients > 1 else args.single_n
                out = (args.profile / f"{label}-{re.sub(r'[^a-z]+', '-', name.lower())[:30]}-{clients}.txt"
                       if args.profile else None)  # fmt: skip
                cpu0, own0 = cpu_seconds(pid), time.process_time()
                with py_spy(pid, out):
                    result = await load(url, clients, per_client, request)
                n_req = len(result.latencies)
                server_cpu = (cpu_seconds(pid) - cpu0) / n_req * 1e3
                client_cpu = (time.process_time() - own0) / n_req * 1e3
                if out is not None:
                    profiles[f"{label}: {name}, {clients} client(s)"] = profile_summary(
                        out, result.wall
                    )
                p50, p99 = pct(result.latencies, 0.5) * 1e3, pct(result.latencies, 0.99) * 1e3
                goal = (f"p50 < {TARGETS['enqueue_p50']:.0f} ms, p99 < {TARGETS['enqueue_p99']:.0f} ms"
                        if target else "-")  # fmt: skip
                if clients == 1:
                    k = max(1, len(result.latencies) // 6)
                    first, last = result.latencies[:k], result.latencies[-k:]
                    rows.append((f"{name}, 1 client: p50 of first / last {k} requests",
                                 f"{pct(first, .5) * 1e3:.1f} / {pct(last, .5) * 1e3:.1f} ms", "-"))  # fmt: skip
                rows.append((f"{name}, {clients} client{'s' * (clients > 1)} x {per_client}",
                             f"{result.rps:.0f} req/s, p50 {p50:.1f} / p99 {p99:.1f} ms, "
                             f"CPU/req server {server_cpu:.1f} client {client_cpu:.1f} ms"
                             + (f", {result.errors} errors" if result.errors else ""),
                             goal))  # fmt: skip
    return rows


async def main_async(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="anvyl-task-bench-"))
    tables: dict[str, list[tuple[str, str, str]]] = {}
    profiles: dict[str, list[str]] = {}
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    try:
        repo = make_git_repo(tmp / "repo")
        for db in args.db:
            if db == "sqlite":
                url = f"sqlite+aiosqlite:///{tmp / 'anvyl.db'}"
                tables[db] = await bench_database(db, url, args, tmp, repo, profiles)
            else:
                async with fresh_postgres() as url:
                    tables[db] = await bench_database(db, url, args, tmp, repo, profiles)
            kill_processes_mentioning(str(tmp))
    finally:
        kill_processes_mentioning(str(tmp))
        if args.keep_logs:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    load_avg = os.getloadavg()
    print(f"\ntask API bench: `anvyl serve` subprocess, workspace backend local, "
          f"{os.cpu_count()} CPUs, load average {load_avg[0]:.1f} {load_avg[1]:.1f}\n")  # fmt: skip
    dbs = list(tables)
    measures = [r[0] for r in tables[dbs[0]]]
    targets = [r[2] for r in tables[dbs[0]]]
    cells = [[r[1] for r in tables[db]] for db in dbs]
    widths = [max(len(m) for m in measures)] + [
        max(len(db), *map(len, col)) for db, col in zip(dbs, cells, strict=False)
    ]
    twidth = max(len(t) for t in targets)
    print(
        "| "
        + " | ".join(h.ljust(w) for h, w in zip(["measure", *dbs], widths, strict=False))
        + f" | {'target':<{twidth}} |"
    )
    print("|" + "|".join("-" * (w + 2) for w in [*widths, twidth]) + "|")
    for i, measure in enumerate(measures):
        row = [measure, *(col[i] for col in cells)]
        print(
            "| "
            + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False))
            + f" | {targets[i]:<{twidth}} |"
        )
    for title, lines in profiles.items():
        print(f"\nprofile, {title}:")
        print("\n".join(lines))
    return 0


def interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgres"],
                        default=["sqlite", "postgres"])  # fmt: skip
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--per-client",
        type=int,
        default=100,
        help="requests per client under concurrency (the issue suggests 2000)",
    )
    parser.add_argument("--single-n", type=int, default=300, help="requests of the 1-client run")
    parser.add_argument("--delay-tasks", type=int, default=200)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy (--gil) the server during each load run; raw profiles in DIR")  # fmt: skip
    args = parser.parse_args()
    # Ctrl-C and SIGTERM raise KeyboardInterrupt inside the event loop, so every `finally` (and
    # asyncio.run's cancellation of the remaining tasks) cleans up. asyncio's own SIGINT handler
    # only cancels the main task, which a library awaiting in a thread can leave unnoticed.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
