"""What a request brings besides its query: files (paths and uploads), a model to prefer, an agent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply, ScriptedToolCall
from tests.orchestrator.conftest import Orchestrator, OrchestratorFactory

SEED_003 = "Compare the README files from multiple repositories"
README_1 = "# Widget\n\nWidget renders charts. Licence: MIT.\n"
README_2 = "# Gadget\n\nGadget stores time series. Licence: Apache-2.0.\n"
UPLOADS = [
    {"name": "repo1_readme.md", "content": README_1},
    {"name": "repo2_readme.md", "content": README_2},
]


def read(path: str) -> ScriptedReply:
    return ScriptedReply(tool_calls=[ScriptedToolCall("read_file", json.dumps({"path": path}))])


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Two scripted models behind the real OpenAI wire protocol: 'primary', then 'backup'."""
    with ScriptedLLMServer() as primary, ScriptedLLMServer() as backup:
        entries = "".join(
            f"  - name: {name}\n    provider: openai\n    base_url: {server.openai_url}\n"
            f"    model: {name}-model\n    api_key: test-key\n"
            for name, server in (("primary", primary), ("backup", backup))
        )
        config = tmp_path / "anvyl.yaml"
        config.write_text(
            f"models:\n{entries}routing:\n  primary: primary\n  fallbacks: [backup]\n"
        )
        monkeypatch.setenv("ANVYL_CONFIG", str(config))
        yield {"primary": primary, "backup": backup}


async def run(orch: Orchestrator, **body: Any) -> dict[str, Any]:
    response = await orch.http.post("/orchestrate", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_seed_003_the_model_reads_both_uploaded_files_in_a_scratch_workspace(
    make_orchestrator: OrchestratorFactory, models: dict[str, ScriptedLLMServer], tmp_path: Path
) -> None:
    model = models["primary"]
    model.push(
        read("repo1_readme.md"),
        read("repo2_readme.md"),
        ScriptedReply(content="Widget (MIT) renders charts; Gadget (Apache-2.0) stores series."),
    )
    async with make_orchestrator(workspace_backend="local") as orch:
        task = await run(orch, query=SEED_003, files=UPLOADS)
        workspaces = (await orch.http.get("/workspaces")).json()

    assert task["status"] == "succeeded", task["error"]
    assert task["result"].startswith("Widget (MIT)")
    assert task["repo_url"] is None
    first_message = model.requests[0].body["messages"][-1]["content"]
    assert first_message.startswith(SEED_003)
    assert "- repo1_readme.md (uploaded" in first_message
    assert "- repo2_readme.md (uploaded" in first_message
    # Each read returned the uploaded text to the model.
    assert "renders charts" in model.requests[1].body["messages"][-1]["content"]
    assert "stores time series" in model.requests[2].body["messages"][-1]["content"]
    # The scratch workspace and its source are gone once the task ended.
    assert workspaces == []
    assert not any((tmp_path / "data" / "scratch").iterdir())


async def test_seed_003_without_a_model_the_planner_shows_an_uploaded_file(
    make_orchestrator: OrchestratorFactory,
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        shown = await run(orch, query="show repo2_readme.md", files=UPLOADS)
        compared = await run(orch, query=SEED_003, files=UPLOADS)
    assert shown["status"] == "succeeded", shown["error"]
    assert "Contents of repo2_readme.md" in shown["result"]
    assert "Gadget stores time series" in shown["result"]
    assert shown["metadata"]["model_used"] is False
    # Comparing needs a model: refused with the clear message, not answered with something else.
    assert compared["status"] == "failed"
    assert "no language model is configured" in compared["error"]


async def test_paths_in_the_repository_are_checked_and_listed_for_the_model(
    make_orchestrator: OrchestratorFactory,
    models: dict[str, ScriptedLLMServer],
    sample_repo: Path,
) -> None:
    model = models["primary"]
    model.push(read("src/app.py"), ScriptedReply(content="It prints hi."))
    async with make_orchestrator(workspace_backend="local") as orch:
        task = await run(
            orch, query="What does the app print?", repo_url=str(sample_repo),
            files=["src/app.py", {"name": "notes/context.md", "content": "Asked by QA.\n"}],
        )  # fmt: skip
    assert task["status"] == "succeeded", task["error"]
    first_message = model.requests[0].body["messages"][-1]["content"]
    assert "- src/app.py (in the repository)" in first_message
    assert "- notes/context.md (uploaded, 13 bytes)" in first_message
    assert "print('hi')" in model.requests[1].body["messages"][-1]["content"]


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (["README.md"], "files.0: 'README.md' is a path in a repository, but the request names no"),
        ([{"name": "../up.md", "content": "x"}], "files.0.upload.name"),
        ([{"name": "/etc/passwd", "content": "x"}], "is absolute"),
        ([{"name": ".git/hooks/pre-commit", "content": "x"}], "points into .git"),
        ([{"name": "a.md"}], "files.0.upload.content: Field required"),
        ([{"name": "a.md", "content": "x", "mode": 7}], "files.0.upload.mode: unknown field"),
        ([{"name": "big.md", "content": "x" * (1024 * 1024 + 1)}], "files.0.upload.content"),
        ([{"name": f"f{i}.md", "content": "é" * 500_000} for i in range(6)],
         "uploaded files total 6000000 bytes, more than 5242880"),
        ([{"name": "a.md", "content": "1"}, {"name": "a.md", "content": "2"}], "repeated: a.md"),
        ([42], "files.0.upload"),
    ],
)  # fmt: skip
async def test_bad_files_entries_are_422_naming_the_field(
    make_orchestrator: OrchestratorFactory, files: list[Any], says: str
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        response = await orch.http.post("/orchestrate", json={"query": "show a.md", "files": files})
        listed = (await orch.http.get("/tasks")).json()["tasks"]
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]
    assert listed == []


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("missing.md", "files.0: 'missing.md' is not a file in the repository"),
        ("../outside.md", "files.0.path"),
        ("src", "'src' is not a file in the repository"),
        ("escape/secret.txt", "leads outside the repository"),
    ],
)
async def test_a_path_that_is_not_a_file_of_the_repository_is_422(
    make_orchestrator: OrchestratorFactory, sample_repo: Path, tmp_path: Path, path: str, says: str
) -> None:
    (tmp_path / "secret.txt").write_text("not in the repository\n")
    (sample_repo / "escape").symlink_to(tmp_path)
    async with make_orchestrator(workspace_backend="local") as orch:
        response = await orch.orchestrate("show README.md", str(sample_repo), files=[path])
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


async def test_an_unknown_model_or_agent_name_is_422_listing_the_known_ones(
    make_orchestrator: OrchestratorFactory, models: dict[str, ScriptedLLMServer]
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        model = await orch.http.post("/orchestrate", json={"query": "list files", "model": "gpt-9"})
        agent = await orch.http.post("/orchestrate", json={"query": "list files", "agent": "ops"})
    assert model.status_code == 422
    assert (
        model.json()["detail"] == "model: no model endpoint named 'gpt-9'; known: primary, backup"
    )
    assert agent.status_code == 422
    assert "agent: no agent named 'ops' exists; known agents: none" in agent.json()["detail"]


async def test_without_configured_models_every_model_name_is_422(
    make_orchestrator: OrchestratorFactory,
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        response = await orch.http.post("/orchestrate", json={"query": "ls", "model": "primary"})
    assert response.status_code == 422
    assert "known: none (no model is configured)" in response.json()["detail"]


async def test_a_known_model_is_tried_first_then_the_rest_of_the_chain(
    make_orchestrator: OrchestratorFactory, models: dict[str, ScriptedLLMServer]
) -> None:
    models["backup"].push(ScriptedReply(content="answered by backup"))
    models["primary"].push(ScriptedReply(content="answered by primary"))
    async with make_orchestrator(workspace_backend="local") as orch:
        chosen = await run(orch, query="Say hello", model="backup")
        assert models["primary"].requests == []
        # backup has no reply left now (it answers 500): the chain goes on to primary.
        fallen_back = await run(orch, query="Say hello", model="backup")
    assert chosen["status"] == "succeeded", chosen["error"]
    assert (chosen["result"], chosen["metadata"]["endpoint"]) == ("answered by backup", "backup")
    assert fallen_back["status"] == "succeeded", fallen_back["error"]
    assert fallen_back["result"] == "answered by primary"
    assert fallen_back["metadata"]["endpoint"] == "primary"
    assert len(models["backup"].requests) >= 2
