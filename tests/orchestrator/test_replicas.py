"""Several orchestrator processes on one PostgreSQL queue, and orchestrators that die mid-task."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.conftest import make_git_repo
from tests.helpers import ServerProcess, read_sse, running_server

# A task that fails unless it has its workspace to itself: a second task running in it at the same
# time finds the marker directory there (the output's 42 is not in the command's text).
ALONE_IN_WORKSPACE = (
    "run `mkdir .running && sleep 0.05 && rmdir .running && echo exclusive: $((6*7))`"
)


def replica_env(database_url: str, instance: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "ANVYL_DATABASE_URL": database_url,
        "ANVYL_INSTANCE": instance,
        "ANVYL_DATA_DIR": str(data_dir),
        "ANVYL_WORKSPACE_BACKEND": "docker",
        **extra,
    }


async def wait_final(
    http: httpx.AsyncClient, url: str, task_id: str, timeout_s: float = 120
) -> dict:
    async with asyncio.timeout(timeout_s):
        while True:
            task = (await http.get(f"{url}/tasks/{task_id}")).json()
            if task["status"] in ("succeeded", "failed", "cancelled"):
                return task
            await asyncio.sleep(0.1)


async def test_two_processes_share_one_queue_and_run_each_of_50_tasks_exactly_once(
    postgres_url: str, docker_instance: str, tmp_path: Path
) -> None:
    repos = [make_git_repo(tmp_path / f"repo-{i}") for i in range(5)]
    with ExitStack() as stack:
        servers: list[ServerProcess] = [
            # Two runners each for five workspaces: one replica alone cannot take all the work.
            stack.enter_context(running_server(
                replica_env(postgres_url, docker_instance, tmp_path / f"data-{i}",
                            ANVYL_MAX_CONCURRENT_TASKS="2"), tmp_path / f"s{i}.log"))
            for i in range(2)
        ]  # fmt: skip
        async with httpx.AsyncClient(timeout=30) as http:
            ids = []
            for n in range(50):
                url = servers[n % 2].url
                body = {"query": ALONE_IN_WORKSPACE, "repo_url": str(repos[n % 5]),
                        "mode": "background"}  # fmt: skip
                ids.append((await http.post(f"{url}/orchestrate", json=body)).json()["task_id"])
            tasks = [
                await wait_final(http, servers[n % 2].url, task_id) for n, task_id in enumerate(ids)
            ]
            events = [
                (
                    await http.get(f"{servers[0].url}/tasks/{t}/events", params={"format": "json"})
                ).json()
                for t in ids
            ]
    assert [t["status"] for t in tasks] == ["succeeded"] * 50, [t["error"] for t in tasks]
    assert all(t["attempts"] == 1 for t in tasks)
    runs = [[e["data"]["runner"] for e in task_events if e["data"].get("status") == "running"]
            for task_events in events]  # fmt: skip
    assert all(len(r) == 1 for r in runs), "a task ran more than once"
    assert len({r[0] for r in runs}) == 2, "one process did all the work"
    # One at a time per workspace, across the replicas: no task found another one's marker.
    assert all("exclusive: 42" in t["result"] for t in tasks), [t["result"] for t in tasks]


async def test_serve_with_two_worker_processes_shares_one_port_and_one_queue(
    postgres_url: str, docker_instance: str, tmp_path: Path
) -> None:
    """`anvyl serve --workers 2` on a fresh database: both processes migrate it at once (one waits
    for the other), both answer on the one port, and both run tasks from the shared queue."""
    # Two runners per process and six workspaces busy for a second each: one process alone
    # cannot take all the work, so the test does not depend on which process accepts a request.
    repos = [make_git_repo(tmp_path / f"repo-{i}") for i in range(6)]
    env = replica_env(postgres_url, docker_instance, tmp_path / "data",
                      ANVYL_MAX_CONCURRENT_TASKS="2")  # fmt: skip
    with running_server(env, tmp_path / "serve.log", args=("--workers", "2")) as server:
        async with httpx.AsyncClient(timeout=30) as http:
            bodies = [{"query": "run `sleep 1; echo done`", "repo_url": str(repos[n % 6]),
                       "mode": "background"} for n in range(12)]  # fmt: skip
            accepted = await asyncio.gather(
                *(http.post(f"{server.url}/orchestrate", json=body) for body in bodies)
            )
            ids = [response.json()["task_id"] for response in accepted]
            tasks = [await wait_final(http, server.url, task_id) for task_id in ids]
            events = [(await http.get(f"{server.url}/tasks/{t}/events",
                                      params={"format": "json"})).json() for t in ids]  # fmt: skip
    assert [t["status"] for t in tasks] == ["succeeded"] * 12, [t["error"] for t in tasks]
    runners = {e["data"]["runner"] for task_events in events for e in task_events
               if e["data"].get("status") == "running"}  # fmt: skip
    assert len(runners) == 2, f"one process did all the work: {runners}"
    log = (tmp_path / "serve.log").read_text()
    assert log.count('"event": "orchestrator.started"') == 2, log[-3000:]


async def test_an_api_only_process_hands_its_tasks_to_a_runner_process_and_streams_them_live(
    postgres_url: str, docker_instance: str, sample_repo: Path, tmp_path: Path
) -> None:
    """ANVYL_MAX_CONCURRENT_TASKS=0 runs no task; LISTEN/NOTIFY wakes the runner process at once
    (its own polling is set to 60 s here, so a task that starts came by the notification) and
    wakes the API process's stream at each event the runner process writes."""
    runner_env = replica_env(postgres_url, docker_instance, tmp_path / "data-runner",
                             ANVYL_QUEUE_POLL_S="60")  # fmt: skip
    api_env = replica_env(postgres_url, docker_instance, tmp_path / "data-api",
                          ANVYL_MAX_CONCURRENT_TASKS="0")  # fmt: skip
    with (
        running_server(runner_env, tmp_path / "runner.log") as runner,
        running_server(api_env, tmp_path / "api.log") as api,
    ):
        async with httpx.AsyncClient(timeout=30) as http:
            body = {"query": "run `echo one; sleep 1; echo two`", "repo_url": str(sample_repo)}
            async with asyncio.timeout(40), http.stream(
                "POST", f"{api.url}/orchestrate", json=body,
                headers={"Accept": "text/event-stream"},
            ) as response:  # fmt: skip
                assert response.status_code == 200
                events = await read_sse(response)
    result = events[-1]["data"]["data"]
    assert events[-1]["event"] == "result" and result["status"] == "succeeded", result
    assert "one" in result["result"] and "two" in result["result"]
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    running = next(e for e in events if e["data"]["data"].get("status") == "running")
    assert f"-{runner.process.pid}-" in running["data"]["data"]["runner"]


def test_an_api_only_process_needs_postgresql(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anvyl.orchestrator", "serve"],
        env=os.environ | {"ANVYL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
                          "ANVYL_MAX_CONCURRENT_TASKS": "0"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "needs PostgreSQL" in result.stderr


def test_serve_refuses_worker_processes_on_sqlite(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anvyl.orchestrator", "serve", "--workers", "2"],
        env=os.environ | {"ANVYL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--workers needs PostgreSQL" in result.stderr
    assert not (tmp_path / "a.db").exists()


async def test_when_a_replica_is_killed_mid_task_the_other_one_finishes_it(
    postgres_url: str, docker_instance: str, sample_repo: Path, tmp_path: Path
) -> None:
    short_lease = {"ANVYL_TASK_LEASE_S": "2"}
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(running_server(
                replica_env(postgres_url, docker_instance, tmp_path / f"data-{i}", **short_lease),
                tmp_path / f"s{i}.log"))
            for i in range(2)
        )  # fmt: skip
        async with httpx.AsyncClient(timeout=30) as http:
            body = {
                "query": "run `sleep 2; echo survived`",
                "repo_url": str(sample_repo),
                "mode": "background",
            }
            task_id = (await http.post(f"{first.url}/orchestrate", json=body)).json()["task_id"]
            async with asyncio.timeout(60):
                while True:
                    events = (await http.get(f"{second.url}/tasks/{task_id}/events",
                                             params={"format": "json"})).json()  # fmt: skip
                    if any(e["type"] == "tool.call" for e in events):
                        break
                    await asyncio.sleep(0.05)
            runner = next(
                e["data"]["runner"] for e in events if e["data"].get("status") == "running"
            )
            victim, survivor = (
                (first, second) if f"-{first.process.pid}-" in runner else (second, first)
            )
            victim.kill_hard()
            killed_at = time.monotonic()
            task = await wait_final(http, survivor.url, task_id)
            events = (
                await http.get(f"{survivor.url}/tasks/{task_id}/events", params={"format": "json"})
            ).json()
    assert task["status"] == "succeeded", task["error"]
    assert "survived" in task["result"] and task["attempts"] == 2
    statuses = [
        (e["data"]["status"], e["data"].get("reason")) for e in events if e["type"] == "status"
    ]
    assert ("queued", "its orchestrator stopped; requeued") in statuses
    runners = [e["data"]["runner"] for e in events if e["data"].get("status") == "running"]
    assert runners[0] == runner and runners[1] != runner
    assert time.monotonic() - killed_at < 60


async def test_a_restarted_sqlite_orchestrator_resumes_the_task_its_previous_process_left(
    docker_instance: str, sample_repo: Path, tmp_path: Path
) -> None:
    env = replica_env(
        f"sqlite+aiosqlite:///{tmp_path / 'anvyl.db'}", docker_instance, tmp_path / "data"
    )
    body = {
        "query": "run `sleep 1; echo resumed`",
        "repo_url": str(sample_repo),
        "mode": "background",
    }
    async with httpx.AsyncClient(timeout=30) as http:
        with running_server(env, tmp_path / "s.log") as server:
            task_id = (await http.post(f"{server.url}/orchestrate", json=body)).json()["task_id"]
            async with asyncio.timeout(60):
                while (await http.get(f"{server.url}/tasks/{task_id}")).json()[
                    "status"
                ] != "running":
                    await asyncio.sleep(0.05)
            server.kill_hard()
        with running_server(env, tmp_path / "s.log") as server:
            task = await wait_final(http, server.url, task_id)
    assert task["status"] == "succeeded", task["error"]
    assert "resumed" in task["result"] and task["attempts"] == 2
