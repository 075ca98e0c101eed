"""Bad requests get a 422 that says what to fix, and nothing is stored for them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from anvyl.orchestrator.db.tables import Task
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
        async with orch.services.db.session() as session:
            stored = await session.scalar(select(func.count()).select_from(Task))
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
