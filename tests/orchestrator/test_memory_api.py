"""Memory through the orchestrator: a finished task is remembered and recalled into a later task's
system prompt by relevance; the model's search_knowledge tool returns an archive snippet with its
source; GET /memory/search and DELETE /memory answer, and refuse bad input with a 422."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from tests.orchestrator.conftest import OrchestratorFactory, call, tools


async def test_tasks_are_recalled_by_relevance_and_the_model_searches_the_archives(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, sample_repo: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    notes = tmp_path / "notes"
    (notes / "ops").mkdir(parents=True)
    (notes / "ops" / "rotation.md").write_text(
        "# Rotation\n\nThe staging password rotates every 90 days.\n"
    )
    (notes / "other.md").write_text("Nothing about passwords here, only lunch plans.\n")
    model.push(
        ScriptedReply(content="The billing websocket reconnect is fixed: backoff doubles to 30 s."),
        ScriptedReply(content="Renamed the CSV export button."),
        tools(call("search_knowledge", query="staging password rotation", scope="archives")),
        ScriptedReply(content="Every 90 days (ops/rotation.md)."),
    )
    async with make_orchestrator(workspace_backend="local") as orch:
        [progress] = await orch.app.state.indexer.sync([str(notes)])
        assert progress.state == "done" and progress.files_indexed == 2
        repo = str(sample_repo)
        first = (await orch.orchestrate("Fix the billing websocket reconnect", repo)).json()
        second = (await orch.orchestrate("Rename the CSV export button", repo)).json()
        third = (await orch.orchestrate("Why did the billing websocket drop, and how often "
                                        "does the staging password rotate?", repo)).json()  # fmt: skip
        found = (await orch.http.get("/memory/search", params={"q": "billing websocket"})).json()
        workspace = third["metadata"]["workspace"]["id"]
        forgot = (await orch.http.delete(f"/memory/workspaces/{workspace}")).json()
        after = (await orch.http.get("/memory/search", params={"q": "billing websocket"})).json()
    assert [t["status"] for t in (first, second, third)] == ["succeeded"] * 3, third.get("error")
    prompt = model.requests[2].body["messages"][0]["content"]
    recalled = [line for line in prompt.split("most relevant to this one first")[1].splitlines()
                if line.startswith("- ")]  # fmt: skip
    # The relevant earlier task comes first (PostgreSQL drops stop words: the other one, sharing
    # only "the", is not recalled there at all).
    assert "billing websocket reconnect is fixed" in recalled[0]
    assert "search_knowledge" in {t["function"]["name"] for t in model.requests[2].body["tools"]}
    tool_output = model.requests[3].body["messages"][-1]["content"]
    assert f"[{notes}:ops/rotation.md:1-3]" in tool_output and "90 days" in tool_output
    assert found["backend"] == "database"
    assert found["hits"][0]["task_id"] == first["task_id"]
    assert found["hits"][0]["source_label"].startswith(f"task {first['task_id']}")
    assert forgot == {"removed": 3}
    assert all(h["kind"] == "archive" for h in after["hits"])


async def test_bad_memory_requests_are_422s_that_say_what_to_fix(
    make_orchestrator: OrchestratorFactory, tmp_path: Path
) -> None:
    async with make_orchestrator(workspace_backend="local") as orch:
        http = orch.http
        empty = await http.get("/memory/search", params={"q": ""})
        blank = await http.get("/memory/search", params={"q": "   "})
        missing = await http.get("/memory/search")
        scope = await http.get("/memory/search", params={"q": "x", "scope": "everything"})
        nothing = await http.delete("/memory/archives")
        bad_sync = await http.post("/memory/archives", json={"locations": [""]})
        queued = await http.post("/memory/archives", json={"locations": [str(tmp_path / "nope")]})
        async with asyncio.timeout(30):
            while (states := (await http.get("/memory/archives")).json())[0]["state"] != "failed":
                await asyncio.sleep(0.05)
    for response in (empty, blank, missing, scope, nothing, bad_sync):
        assert response.status_code == 422, response.text
    assert "q" in empty.json()["detail"] and "scope" in scope.json()["detail"]
    assert "location" in nothing.json()["detail"]
    assert queued.status_code == 202
    assert "no such directory" in states[0]["error"]


async def test_the_memory_routes_need_the_api_key(make_orchestrator: OrchestratorFactory) -> None:
    async with make_orchestrator(workspace_backend="local", api_keys="k1") as orch:
        refused = await orch.http.get("/memory/search", params={"q": "x"})
        allowed = await orch.http.get("/memory/search", params={"q": "x"},
                                      headers={"Authorization": "Bearer k1"})  # fmt: skip
    assert refused.status_code == 401
    assert allowed.status_code == 200 and allowed.json()["hits"] == []


async def test_memory_off_answers_409(make_orchestrator: OrchestratorFactory) -> None:
    async with make_orchestrator(workspace_backend="local", memory_backend="off") as orch:
        response = await orch.http.get("/memory/search", params={"q": "x"})
    assert response.status_code == 409 and "memory is off" in response.json()["detail"]


_ = httpx  # the client type of orch.http
