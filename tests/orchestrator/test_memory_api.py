"""Memory through the orchestrator: a finished task is remembered and recalled into a later task's
system prompt by relevance; the model's search_knowledge tool returns an archive snippet with its
source; GET /memory/search and DELETE /memory answer, and refuse bad input with a 422."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from anvyl.gpt_oss.embeddings import create_embeddings_app
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from tests.mcp_hub.conftest import serve_app
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
        # Not blank as the OpenAPI document reads its pattern (ECMA-262), though Python counts
        # U+0085 as whitespace: searched, and nothing found.
        nel = await http.get("/memory/search", params={"q": "\x85"})
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
    assert nel.status_code == 200 and nel.json()["hits"] == [], nel.text
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


async def wait_for_hit(orch: object, query: str, scope: str, timeout_s: float = 60) -> list[dict]:
    """The hits of GET /memory/search once it finds something (the indexer works in the
    background), or [] after the timeout."""
    http: httpx.AsyncClient = orch.http  # type: ignore[attr-defined]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        answer = (await http.get("/memory/search", params={"q": query, "scope": scope})).json()
        if answer["hits"]:
            return list(answer["hits"])
        await asyncio.sleep(0.2)
    return []


async def test_the_archives_of_the_settings_are_indexed_and_followed_as_they_change(
    make_orchestrator: OrchestratorFactory, tmp_path: Path
) -> None:
    """`rag_archives` in the settings: indexed when set, again when a file changes on disk."""
    notes = tmp_path / "runbooks"
    notes.mkdir()
    (notes / "dns.md").write_text("# DNS\n\nThe resolver cache is flushed with unbound-control.\n")
    async with make_orchestrator(workspace_backend="local", memory_reindex_interval_s=0.5) as orch:
        patched = await orch.http.patch("/settings", json={"rag_archives": [str(notes)]})
        assert patched.status_code == 200, patched.text
        first = await wait_for_hit(orch, "resolver unbound", "archives")
        (notes / "backup.md").write_text("# Backups\n\nSnapshots go to the vault bucket nightly.\n")
        later = await wait_for_hit(orch, "snapshots vault nightly", "archives")
        cleared = await orch.http.patch("/settings", json={"rag_archives": []})
        assert cleared.status_code == 200
        for _ in range(100):  # the archive the settings no longer name is forgotten
            gone = (await orch.http.get("/memory/search",
                                        params={"q": "resolver unbound", "scope": "archives"})).json()  # fmt: skip
            if not gone["hits"]:
                break
            await asyncio.sleep(0.2)
    assert first and first[0]["source_label"].startswith(f"{notes}:dns.md")
    assert later and later[0]["source_label"].startswith(f"{notes}:backup.md")
    assert gone["hits"] == []


async def test_memory_enabled_false_records_and_recalls_nothing(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, sample_repo: Path
) -> None:
    """With `memory_enabled: false` a finished task is not remembered, no memory is recalled into
    the prompt and the model has no search_knowledge tool; on again, all three are back."""
    model.push(
        ScriptedReply(content="The ingress certificate renewal is fixed."),
        ScriptedReply(content="Looked at the ingress certificate again."),
        ScriptedReply(content="And once more, with memory on."),
    )
    async with make_orchestrator(workspace_backend="local") as orch:
        assert (
            await orch.http.patch("/settings", json={"memory_enabled": False})
        ).status_code == 200
        off = (
            await orch.orchestrate("Fix the ingress certificate renewal", str(sample_repo))
        ).json()
        nothing = (await orch.http.get("/memory/search",
                                       params={"q": "ingress certificate", "scope": "tasks"})).json()  # fmt: skip
        off_again = (
            await orch.orchestrate("Check the ingress certificate", str(sample_repo))
        ).json()
        assert (
            await orch.http.patch("/settings", json={"memory_enabled": True})
        ).status_code == 200
        on = (await orch.orchestrate("Check the ingress certificate", str(sample_repo))).json()
        remembered = (await orch.http.get("/memory/search",
                                          params={"q": "ingress certificate", "scope": "tasks"})).json()  # fmt: skip
    assert [t["status"] for t in (off, off_again, on)] == ["succeeded"] * 3
    assert off["metadata"]["settings"]["memory_enabled"] is False
    assert nothing["hits"] == []
    tools_off = {t["function"]["name"] for t in model.requests[1].body.get("tools", [])}
    tools_on = {t["function"]["name"] for t in model.requests[2].body.get("tools", [])}
    assert "search_knowledge" not in tools_off and "search_knowledge" in tools_on
    assert [h["task_id"] for h in remembered["hits"]] == [on["task_id"]]


def slowed(app: Any, pause_s: float) -> Any:
    """The ASGI app, each of its HTTP requests answered `pause_s` later."""

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(pause_s)
        await app(scope, receive, send)

    return slow_app


async def test_a_task_read_as_succeeded_is_already_in_memory(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer, sample_repo: Path
) -> None:
    """A task's summary is kept before its status says succeeded: with an embeddings endpoint that
    takes half a second a call, a search right after the task finds it, and forgetting the
    workspace right after the next one leaves nothing behind."""
    model.push(
        ScriptedReply(content="Rotated the staging TLS certificate."),
        ScriptedReply(content="Rotated the staging TLS certificate once more."),
    )
    repo = str(sample_repo)
    with serve_app(slowed(create_embeddings_app(), 0.5)) as embeddings:
        async with make_orchestrator(workspace_backend="local",
                                     embeddings_url=f"http://127.0.0.1:{embeddings.port}/v1") as orch:  # fmt: skip
            first = (await orch.orchestrate("Rotate the staging TLS certificate", repo)).json()
            found = (await orch.http.get("/memory/search", params={
                "q": "staging TLS certificate", "scope": "tasks"})).json()  # fmt: skip
            second = (await orch.orchestrate("Rotate it once more", repo)).json()
            workspace = second["metadata"]["workspace"]["id"]
            forgot = (await orch.http.delete(f"/memory/workspaces/{workspace}")).json()
            after = (await orch.http.get("/memory/search", params={
                "q": "staging TLS certificate", "scope": "tasks"})).json()  # fmt: skip
    assert [t["status"] for t in (first, second)] == ["succeeded"] * 2, second.get("error")
    assert [h["task_id"] for h in found["hits"]] == [first["task_id"]]
    assert forgot == {"removed": 2}
    assert after["hits"] == []
