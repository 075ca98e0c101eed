"""Bad requests get a 422 that says what to fix, and nothing is stored for them."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from anvyl.orchestrator.api.app import create_app
from anvyl.orchestrator.db.tables import Task
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.wakeups import asyncpg_dsn
from tests.orchestrator.conftest import OrchestratorFactory


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"query": "", "repo_url": "REPO"}, "query"),
        ({"query": "   ", "repo_url": "REPO"}, "query"),
        ({"query": "x" * 20_001, "repo_url": "REPO"}, "query"),
        ({"repo_url": "REPO"}, "query: Field required"),
        ({"query": "list files", "repo_url": "REPO", "surprise": 1}, "surprise: unknown field"),
        ({"query": "list files", "repo_url": "relative/path"}, "absolute path"),
        ({"query": "list files", "repo_url": "/no/such/dir"}, "no such directory"),
        ({"query": "list files", "repo_url": "NOT_GIT"}, "not a git repository"),
        ({"query": "list files", "repo_url": "ftp://example.com/repo.git"}, "scheme 'ftp'"),
        ({"query": "list files", "repo_url": "ext::sh -c touch% /tmp/x"}, "ext::"),
        ({"query": "list files", "repo_url": "--upload-pack=evil"}, "must not start with '-'"),
        ({"query": "list files", "repo_url": "https://"}, "needs a host"),
        ({"query": 42, "repo_url": "REPO"}, "query"),
    ],
)
async def test_bad_request_is_422_with_a_clear_message_and_stores_nothing(
    make_orchestrator: OrchestratorFactory, sample_repo: Path, tmp_path: Path, body: dict, says: str
) -> None:
    not_git = tmp_path / "plain-dir"
    not_git.mkdir()
    for key, value in body.items():
        if value == "REPO":
            body[key] = str(sample_repo)
        elif value == "NOT_GIT":
            body[key] = str(not_git)
    async with make_orchestrator(workspace_backend="local") as orch:
        response = await orch.http.post("/orchestrate", json=body)
        stored = await orch.services.db.read(
            lambda c: c.scalar(select(func.count()).select_from(Task))
        )
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]
    assert stored == 0


async def test_a_body_that_is_not_json_is_422(make_orchestrator: OrchestratorFactory) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        response = await orch.http.post(
            "/orchestrate", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]


async def test_an_unknown_task_is_404(make_orchestrator: OrchestratorFactory) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        response = await orch.http.get("/tasks/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert "no task with id" in response.json()["detail"]


async def test_while_the_database_refuses_connections_requests_get_503_then_work_again(
    postgres_url: str, instance: str, sample_repo: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, instance=instance,
                        workspace_backend="local", log_format="json")  # fmt: skip
    app = create_app(settings)
    name = make_url(postgres_url).database
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url).rsplit("/", 1)[0] + "/postgres")
    body = {"query": "list files", "repo_url": str(sample_repo), "mode": "background"}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        ):
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            refused = await http.post("/orchestrate", json=body)
            listed = await http.get("/tasks")
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            for _ in range(20):  # the pool replaces the connections it lost, one failure each
                accepted = await http.post("/orchestrate", json=body)
                if accepted.status_code != 503:
                    break
            tasks = (await http.get("/tasks")).json()["tasks"]
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "database did not answer, retry later" in refused.json()["detail"]
    assert listed.status_code == 503
    assert accepted.status_code == 202, accepted.text
    assert [t["task_id"] for t in tasks] == [
        accepted.json()["task_id"]
    ]  # the refused one left nothing


@pytest.mark.parametrize(
    ("path", "says"),
    [
        (f"/tasks?offset={10**22}", "query.offset: Input should be less than or equal to"),
        ("/tasks?status=done", "query.status: Input should be 'queued'"),
        (f"/tasks/TASK/events?after={10**22}", "query.after: Input should be less than or equal"),
        ("/tasks/TASK/events?format=xml", "query.format"),
    ],
)
async def test_out_of_range_or_unknown_query_values_are_422_not_500_or_a_broken_stream(
    make_orchestrator: OrchestratorFactory, path: str, says: str
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        accepted = await orch.http.post("/orchestrate", json={"query": "ls"})  # ended when answered
        response = await orch.http.get(path.replace("TASK", accepted.json()["task_id"]))
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]
