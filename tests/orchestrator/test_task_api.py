"""The task API: background runs, event streams, reconnects, idempotency, cancel, limits, listing."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from anvyl.orchestrator.api.app import create_app
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.queue import QueueAlreadyRunning
from tests.conftest import make_git_repo
from tests.helpers import read_sse, serving
from tests.orchestrator.conftest import Orchestrator, OrchestratorFactory


async def wait_status(
    orch: Orchestrator, task_id: str, *states: str, timeout_s: float = 60
) -> dict:
    async with asyncio.timeout(timeout_s):
        while True:
            task = (await orch.http.get(f"/tasks/{task_id}")).json()
            if task["status"] in states:
                return task
            await asyncio.sleep(0.05)


async def background(orch: Orchestrator, query: str, repo: Path | None, **extra: Any) -> str:
    body = {"query": query, "mode": "background", **extra}
    if repo is not None:
        body["repo_url"] = str(repo)
    response = await orch.http.post("/orchestrate", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


async def test_a_background_task_is_accepted_at_once_and_then_polled(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        response = await orch.http.post(
            "/orchestrate",
            json={"query": "list files", "repo_url": str(sample_repo), "mode": "background"},
        )
        assert response.status_code == 202
        accepted = response.json()
        assert accepted["status"] == "queued"
        assert response.headers["location"] == f"/tasks/{accepted['task_id']}"
        task = await wait_status(orch, accepted["task_id"], "succeeded", "failed")
    assert task["status"] == "succeeded", task["error"]
    assert "README.md" in task["result"]


async def test_the_event_stream_is_complete_ordered_and_ends_with_the_result(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        response = await orch.http.post(
            "/orchestrate",
            json={"query": "show git status", "repo_url": str(sample_repo)},
            headers={"accept": "text/event-stream"},
        )
        events = await read_sse(response)
    assert response.headers["content-type"].startswith("text/event-stream")
    seqs = [int(e["id"]) for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert [e["data"]["seq"] for e in events] == seqs
    assert events[0]["event"] == "status" and events[0]["data"]["data"]["status"] == "queued"
    assert events[1]["data"]["data"]["status"] == "running"
    kinds = [e["event"] for e in events]
    assert kinds.index("tool.call") < kinds.index("tool.result") < kinds.index("result")
    assert events[-1]["event"] == "result" and events[-1]["data"]["data"]["status"] == "succeeded"
    assert "## main" in events[-1]["data"]["data"]["result"]


async def test_a_client_that_reconnects_with_last_event_id_misses_and_repeats_nothing(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with (
        make_orchestrator(workspace_backend="local") as orch,
        serving(orch.app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        task_id = (await http.post("/orchestrate", json={
                "query": "run `sleep 0.5; echo one; sleep 0.5; echo two`", "repo_url": str(sample_repo),
                "mode": "background"})).json()["task_id"]  # fmt: skip
        async with http.stream("GET", f"/tasks/{task_id}/events") as first:
            seen = await read_sse(first, limit=2)  # then the client drops
        last = seen[-1]["id"]
        async with http.stream("GET", f"/tasks/{task_id}/events",
                                   headers={"Last-Event-ID": last}) as second:  # fmt: skip
            rest = await read_sse(second)
        everything = (await http.get(f"/tasks/{task_id}/events", params={"format": "json"})).json()
    assert [int(e["id"]) for e in seen + rest] == [e["seq"] for e in everything]
    assert rest[-1]["event"] == "result" and "two" in rest[-1]["data"]["data"]["result"]


async def test_replaying_a_finished_task_from_the_start_or_from_the_end(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        task = (await orch.orchestrate("list files", str(sample_repo))).json()
        replay = await read_sse(await orch.http.get(f"/tasks/{task['task_id']}/events"))
        last = replay[-1]["id"]
        nothing = await read_sse(
            await orch.http.get(f"/tasks/{task['task_id']}/events", headers={"Last-Event-ID": last})
        )
        bad = await orch.http.get(
            f"/tasks/{task['task_id']}/events", headers={"Last-Event-ID": "x"}
        )
    assert replay[0]["id"] == "1" and replay[-1]["event"] == "result"
    assert nothing == []
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["detail"]


async def test_a_retry_with_the_same_idempotency_key_returns_the_same_task(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    body = {"query": "list files", "repo_url": str(sample_repo), "mode": "background"}
    async with make_orchestrator(workspace_backend="local") as orch:
        first = await orch.http.post("/orchestrate", json=body, headers={"Idempotency-Key": "k-1"})
        retry = await orch.http.post("/orchestrate", json=body, headers={"Idempotency-Key": "k-1"})
        other = await orch.http.post(
            "/orchestrate", json=body | {"query": "git status"}, headers={"Idempotency-Key": "k-1"}
        )
        sync_retry = await orch.http.post(
            "/orchestrate", json=body | {"mode": "sync"}, headers={"Idempotency-Key": "k-2"}
        )
        sync_again = await orch.http.post(
            "/orchestrate", json=body | {"mode": "sync"}, headers={"Idempotency-Key": "k-2"}
        )
        listed = (await orch.http.get("/tasks")).json()["tasks"]
    assert first.status_code == retry.status_code == 202
    assert retry.json()["task_id"] == first.json()["task_id"]
    assert other.status_code == 409 and "different request body" in other.json()["detail"]
    assert sync_again.json() == sync_retry.json() and sync_retry.json()["status"] == "succeeded"
    assert len(listed) == 2


async def test_a_cancelled_queued_task_never_starts(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        blocker = await background(orch, "run `sleep 30`", sample_repo)
        await wait_status(orch, blocker, "running")
        waiting = await background(orch, "list files", sample_repo)  # same workspace: waits
        cancelled = await orch.http.post(f"/tasks/{waiting}/cancel")
        await orch.http.post(f"/tasks/{blocker}/cancel")
        await wait_status(orch, blocker, "cancelled")
        await asyncio.sleep(1.0)  # give runners every chance to (wrongly) pick it up
        task = (await orch.http.get(f"/tasks/{waiting}")).json()
        events = (await orch.http.get(f"/tasks/{waiting}/events", params={"format": "json"})).json()
        again = await orch.http.post(f"/tasks/{waiting}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert task["status"] == "cancelled" and task["started_at"] is None and task["attempts"] == 0
    assert [e["data"].get("status") for e in events if e["type"] == "status"] == [
        "queued",
        "cancelled",
    ]
    assert again.status_code == 409


async def test_cancelling_a_running_task_kills_its_process_and_keeps_its_events(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    marker = "sleep 313"
    async with make_orchestrator(workspace_backend="local", workspace_sandbox="none") as orch:
        task_id = await background(orch, f"run `{marker}`", sample_repo)
        async with asyncio.timeout(30):
            while not any(e["type"] == "tool.call" for e in
                          (await orch.http.get(f"/tasks/{task_id}/events", params={"format": "json"})).json()):  # fmt: skip
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0
        await orch.http.post(f"/tasks/{task_id}/cancel")
        task = await wait_status(orch, task_id, "cancelled", "failed", "succeeded", timeout_s=15)
        events = (await orch.http.get(f"/tasks/{task_id}/events", params={"format": "json"})).json()
        await asyncio.sleep(0.5)
        still_running = subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0
    assert task["status"] == "cancelled" and task["error"] == "cancelled by request"
    assert [e["type"] for e in events][:4] == [
        "status",
        "status",
        "workspace.ready",
        "workspace.synced",
    ]
    assert events[-1]["type"] == "result"
    assert not still_running, "the command kept running in the worker after the task was cancelled"


async def test_a_task_past_its_time_limit_fails_with_a_clear_reason(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        task = (await orch.orchestrate("run `sleep 20`", str(sample_repo), timeout_s=1)).json()
        too_long = await orch.orchestrate("list files", str(sample_repo), timeout_s=10**9)
    assert task["status"] == "failed" and task["error"] == "timed out after 1s"
    assert too_long.status_code == 422 and "timeout_s" in too_long.json()["detail"]


async def test_tasks_of_one_workspace_run_one_at_a_time_in_order_and_others_in_parallel(
    make_orchestrator: OrchestratorFactory, sample_repo: Path, tmp_path: Path
) -> None:
    other_repo = make_git_repo(tmp_path / "other-repo")
    async with make_orchestrator(workspace_backend="local") as orch:
        same = [await background(orch, "run `sleep 0.4`", sample_repo) for _ in range(3)]
        other = await background(orch, "run `sleep 0.4`", other_repo)
        done = [await wait_status(orch, t, "succeeded", "failed") for t in [*same, other]]
    assert all(t["status"] == "succeeded" for t in done), [t["error"] for t in done]
    first, second, third, elsewhere = done
    assert (
        first["finished_at"] <= second["started_at"]
        and second["finished_at"] <= third["started_at"]
    )
    assert elsewhere["started_at"] < first["finished_at"]  # not held back by the busy workspace


async def test_tasks_are_listed_newest_first_with_filters_and_pages(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        ids = [(await orch.orchestrate(q, str(sample_repo))).json()["task_id"]
               for q in ("list files", "git status", "write a poem")]  # fmt: skip
        page1 = (await orch.http.get("/tasks", params={"limit": 2})).json()
        page2 = (
            await orch.http.get("/tasks", params={"limit": 2, "offset": page1["next_offset"]})
        ).json()
        failed = (await orch.http.get("/tasks", params={"status": "failed"})).json()
        workspace = ids and (await orch.http.get(f"/tasks/{ids[0]}")).json()["workspace_id"]
        by_workspace = (await orch.http.get("/tasks", params={"workspace_id": workspace})).json()
        nowhere = (await orch.http.get("/tasks", params={"workspace_id": "nope"})).json()
        bad = await orch.http.get("/tasks", params={"status": "sleeping"})
    assert [t["task_id"] for t in page1["tasks"] + page2["tasks"]] == ids[::-1]
    assert page2["next_offset"] is None
    assert [t["task_id"] for t in failed["tasks"]] == [ids[2]]
    assert len(by_workspace["tasks"]) == 3 and nowhere["tasks"] == []
    assert bad.status_code == 422 and "status" in bad.json()["detail"]


async def test_with_api_keys_everything_but_health_needs_a_key(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local", api_keys="key-one,key-two") as orch:
        http = orch.http
        assert (await http.get("/health")).status_code == 200
        for method, path in [("GET", "/tasks"), ("GET", "/ready"), ("GET", "/metrics"),
                             ("POST", "/orchestrate"), ("GET", "/tasks/x/events")]:  # fmt: skip
            response = await http.request(method, path, json={})
            assert response.status_code == 401, (path, response.text)
            assert "API key" in response.json()["detail"]
        wrong = await http.get("/tasks", headers={"Authorization": "Bearer key-three"})
        right = await http.get("/tasks", headers={"Authorization": "Bearer key-two"})
    assert wrong.status_code == 401 and right.status_code == 200


async def test_metrics_and_readiness(
    make_orchestrator: OrchestratorFactory, sample_repo: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        await orch.orchestrate("list files", str(sample_repo))
        ready = await orch.http.get("/ready")
        text = (await orch.http.get("/metrics")).text
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert 'anvyl_tasks{state="succeeded"} 1.0' in text
    assert "anvyl_queue_depth 0.0" in text and "anvyl_running_tasks 0.0" in text
    assert 'anvyl_task_duration_seconds_count{status="succeeded"} 1.0' in text
    assert (
        'anvyl_http_request_duration_seconds_count{method="POST",route="/orchestrate",status="200"} 1.0'
        in text
    )


async def test_sqlite_refuses_a_second_process_running_its_queue(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, workspace_backend="local", instance="sqlite-lock")
    first, second = create_app(settings), create_app(settings)
    async with first.router.lifespan_context(first):
        with pytest.raises(QueueAlreadyRunning, match="single-process embedded mode"):
            async with second.router.lifespan_context(second):
                pass
    async with second.router.lifespan_context(second):  # free again once the first one stopped
        pass
