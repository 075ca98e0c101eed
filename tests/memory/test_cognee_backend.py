"""The cognee backend for real, offline: cognee's pipeline (chunks, graph and summaries from the
chat model, vectors) against a scripted chat model on the OpenAI wire protocol and the real
embeddings endpoint; no cloud key, no download. cognee (the orchestrator's `cognee` extra) lives in
its own environment, so the main run skips this test and scripts/test-cognee.sh runs it there, where
ANVYL_REQUIRE_COGNEE=1 turns a missing cognee into an error."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from anvyl.orchestrator.llm.testing import RecordedRequest, ScriptedLLMServer, ScriptedReply
from anvyl.orchestrator.memory.records import Snippet, TaskMemory

if os.environ.get("ANVYL_REQUIRE_COGNEE") == "1":
    importlib.import_module("cognee")
else:
    pytest.importorskip("cognee", reason="cognee has its own environment: scripts/test-cognee.sh")

from anvyl.orchestrator.memory.cognee_backend import CogneeMemory


def answer(request: RecordedRequest) -> ScriptedReply:
    """What cognee asks a chat model: a connection test, then for each chunk a knowledge graph and
    a summary, both as JSON objects."""
    system = str(request.body["messages"][0]["content"])
    if request.body.get("response_format"):
        if "knowledge graph" in system:
            return ScriptedReply(content=json.dumps({"nodes": [], "edges": []}), chunk_size=4096)
        return ScriptedReply(content=json.dumps({"summary": "a note", "description": "a note"}),
                             chunk_size=4096)  # fmt: skip
    return ScriptedReply(content="test")


@pytest.fixture
def chat_model() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(answer) as server:
        yield server


async def test_cognee_remembers_searches_and_forgets_against_local_endpoints(
    chat_model: ScriptedLLMServer, embeddings_url: str, tmp_path: Path
) -> None:
    memory = CogneeMemory(tmp_path / "cognee", llm_url=chat_model.openai_url, llm_model="scripted-model",
                          llm_api_key=None, embeddings_url=embeddings_url,
                          embeddings_model="wordllama-l2-supercat")  # fmt: skip
    await memory.remember_task(TaskMemory(task_id="t1", workspace_id="ws-a",
                                          text="Fixed the billing websocket reconnect backoff"))  # fmt: skip
    await memory.remember_task(TaskMemory(task_id="t2", workspace_id="ws-b",
                                          text="Renamed the CSV export button"))  # fmt: skip
    archive = str(tmp_path / "notes")
    stored = await memory.add_files(archive, {
        "ops/rotation.md": [Snippet(text="The staging password rotates every 90 days.", line_start=1, line_end=3)],
        "lunch.md": [Snippet(text="Lunch is at noon on Fridays, pizza as usual.", line_start=1, line_end=1)],
    })  # fmt: skip
    assert stored == 2

    archives = await memory.search(
        "how often does the staging password rotate", scope="archives", limit=2
    )
    tasks = await memory.search("billing websocket", scope="tasks", workspace_id="ws-a")
    assert (archives[0].archive, archives[0].path, archives[0].line_start) == (
        archive,
        "ops/rotation.md",
        1,
    )
    assert archives[0].source == f"{archive}:ops/rotation.md:1-3"
    assert [h.task_id for h in tasks] == ["t1"]  # ws-b's task is not in ws-a's scope
    # The chat model was really asked: a graph and a summary for each chunk.
    systems = [str(r.body["messages"][0]["content"]) for r in chat_model.requests]
    assert sum("knowledge graph" in s for s in systems) >= 4

    assert await memory.forget(workspace_id="ws-a") == 1
    assert await memory.search("billing websocket", scope="tasks", workspace_id="ws-a") == []
    assert await memory.forget_file(archive, "ops/rotation.md") == 1
    left = await memory.search("staging password", scope="archives", limit=5)
    assert all(h.path != "ops/rotation.md" for h in left)
