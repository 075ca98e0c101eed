"""Database statements per task (issue 3): what one task costs the database, by kind of statement.

    uv run python bench/db_round_trips.py [--tasks 100] [--databases postgres sqlite]

An in-process orchestrator (its real lifespan: migrations, queue, 4 task slots; local workspace
backend, built-in planner) on a fresh database works through --tasks background "list files" tasks
on a git repo made by the bench, one workspace, posted at once; a client polls the last one until it
ends. SQLAlchemy's `before_cursor_execute`, `commit` and `rollback` events count what reaches the
database after a warm-up task. On PostgreSQL each statement is a round trip, and each transaction
block two more (BEGIN, COMMIT or ROLLBACK); statements outside a block (autocommit) need neither.
A round trip costs about 0.2 ms of CPU in `send()` alone on the 2-CPU test VM, so this count is
what the task API's latency under load on PostgreSQL follows. Counts, not times: the table is the
same on any machine, give or take the task slots' looks that find nothing (they vary with timing).
The temporary database and directory are removed at the end, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Connection, event

from anvyl.orchestrator.api.app import create_app
from anvyl.orchestrator.settings import Settings
from common import fresh_postgres, interrupt, make_git_repo

# Statements by what they do: (kind, how it starts, a fragment it also holds), first match wins.
KINDS = (
    ("enqueue", ("WITH new_tasks", "INSERT INTO tasks"), ""),
    ("claim", ("WITH picked", "SELECT candidate.id"), ""),
    ("claim: lease", ("UPDATE tasks SET status=",), "attempts="),
    (
        "step events",
        ("WITH advanced AS (UPDATE tasks SET event_seq", "UPDATE tasks SET event_seq"),
        "",
    ),
    ("finish", ("WITH advanced AS (UPDATE tasks SET status", "UPDATE tasks SET status="), ""),
    ("insert events", ("INSERT INTO task_events",), ""),
    ("read a task (GET /tasks/{id})", ("SELECT tasks.id, tasks.status",), ""),
    (
        "remember the summary (memory)",
        ("WITH gone AS (DELETE FROM memories", "INSERT INTO memories"),
        "",
    ),
    ("remember: drop an older one", ("DELETE FROM memories",), "memories.task_id"),
)


BLOCKS = "transaction blocks (BEGIN ... COMMIT/ROLLBACK)"


def kind_of(statement: str) -> str:
    flat = " ".join(statement.split())
    for kind, starts, holds in KINDS:
        if flat.startswith(starts) and holds in flat:
            return kind
    return "other: " + flat[:60]


async def count(database_url: str, tmp: Path, repo: Path, tasks: int) -> dict[str, float]:
    settings = Settings(data_dir=tmp / f"data-{secrets.token_hex(3)}", database_url=database_url,
                        workspace_backend="local", log_level="warning", max_concurrent_tasks=4)  # fmt: skip
    app = create_app(settings)
    counts: collections.Counter[str] = collections.Counter()
    body = {"query": "list files", "repo_url": str(repo)}
    async with app.router.lifespan_context(app):
        engine = app.state.services.db.sync_engine

        def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            counts[kind_of(statement)] += 1

        def on_begin(connection: Connection) -> None:
            # SQLAlchemy begins on autocommit connections too, but the driver sends no BEGIN.
            if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                counts[BLOCKS] += 1

        event.listen(engine, "before_cursor_execute", on_execute)
        event.listen(engine, "begin", on_begin)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=120
        ) as http:
            warm_up = (await http.post("/orchestrate", json=body)).json()  # starts the worker
            assert warm_up["status"] == "succeeded", warm_up
            await asyncio.sleep(0.5)  # the warm-up's task slot settles
            counts.clear()
            ids = []
            for _ in range(tasks):
                answer = await http.post("/orchestrate", json=body | {"mode": "background"})
                ids.append(answer.json()["task_id"])
            for _ in range(600):  # up to two minutes
                task = (await http.get(f"/tasks/{ids[-1]}")).json()
                if task["status"] not in ("queued", "running"):
                    break
                await asyncio.sleep(0.2)
            assert task["status"] == "succeeded", task
            per_task = {kind: n / tasks for kind, n in counts.items()}
    return per_task


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="anvyl-round-trips-"))
    results: dict[str, dict[str, float]] = {}
    try:
        repo = make_git_repo(tmp / "repo")
        for database in args.databases:
            print(f"[{database}] {args.tasks} tasks", file=sys.stderr)
            if database == "sqlite":
                results[database] = await count(f"sqlite+aiosqlite:///{tmp / 'anvyl.db'}", tmp,
                                                repo, args.tasks)  # fmt: skip
                continue
            async with fresh_postgres() as url:
                results[database] = await count(url, tmp, repo, args.tasks)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kinds = [kind for kind, _, _ in KINDS] + sorted(
        {k for r in results.values() for k in r if k.startswith("other")}
    )
    blocks = BLOCKS
    print(f"\ndatabase statements per task ({args.tasks} background tasks, one workspace, "
          "4 task slots, local backend, built-in planner)\n")  # fmt: skip
    header = "| per task | " + " | ".join(results) + " |"
    print(header)
    print("|---" * (len(results) + 1) + "|")
    for kind in [*kinds, blocks]:
        if any(kind in r for r in results.values()):
            print(
                f"| {kind} | "
                + " | ".join(f"{r.get(kind, 0):.2f}" for r in results.values())
                + " |"
            )
    statements = {db: sum(n for k, n in r.items() if k != blocks) for db, r in results.items()}
    print("| **statements** | " + " | ".join(f"{statements[db]:.2f}" for db in results) + " |")
    if "postgres" in results:
        trips = statements["postgres"] + 2 * results["postgres"].get(blocks, 0)
        print(
            f"\nPostgreSQL round trips per task (statements + 2 per transaction block): {trips:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--databases", nargs="+", choices=("postgres", "sqlite"),
                        default=["postgres", "sqlite"])  # fmt: skip
    signal.signal(signal.SIGTERM, interrupt)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
