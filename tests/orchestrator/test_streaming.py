"""Model output streams to SSE clients as `token` events while a turn runs; stored events stay one
per step. A scripted model (real OpenAI wire protocol) streams slowly; clients read over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from tests.helpers import read_sse, serving
from tests.orchestrator.conftest import OrchestratorFactory, call, slow

ANSWER = "The repository holds a README and one app."


async def timed_sse(response: httpx.Response) -> list[dict[str, Any]]:
    """`read_sse`, with the time each event arrived."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line == "" and "data" in current:
            events.append(current | {"at": time.monotonic()})
            current = {}
        elif line and not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")
    return events


def text_of(events: list[dict[str, Any]], step: int) -> str:
    tokens = [json.loads(e["data"])["data"] for e in events if e["event"] == "token"]
    return "".join(t["text"] for t in tokens if t["step"] == step and t["kind"] == "content")


async def test_sse_clients_get_the_models_text_before_the_turn_ends_unless_they_opt_out(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer
) -> None:
    model.push(slow(ScriptedReply(content=ANSWER)))
    async with (
        make_orchestrator() as orch,
        serving(orch.app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        body = {"query": "What is in the repository?", "mode": "background"}
        task_id = (await http.post("/orchestrate", json=body)).json()["task_id"]

        async def read(params: dict[str, str]) -> list[dict[str, Any]]:
            async with http.stream("GET", f"/tasks/{task_id}/events", params=params) as response:
                return await timed_sse(response)

        with_tokens, without = await asyncio.gather(read({}), read({"tokens": "false"}))
        stored = (await http.get(f"/tasks/{task_id}/events", params={"format": "json"})).json()

    kinds = [e["event"] for e in with_tokens]
    model_call = kinds.index("model.call")
    first_token = kinds.index("token")
    assert first_token < model_call
    # The first pieces arrived while the model was still stalling, not with the finished turn.
    assert with_tokens[model_call]["at"] - with_tokens[first_token]["at"] > 0.4
    assert text_of(with_tokens, step=1) == ANSWER
    assert all("id" not in e for e in with_tokens if e["event"] == "token")
    steps = [e for e in with_tokens if e["event"] != "token"]
    assert [int(e["id"]) for e in steps] == [e["seq"] for e in stored]
    assert "token" not in [e["event"] for e in without]
    assert [int(e["id"]) for e in without] == [e["seq"] for e in stored]
    assert "token" not in [e["type"] for e in stored]
    assert [e["type"] for e in stored].count("model.call") == 1


async def test_tokens_of_each_turn_come_between_the_steps_they_follow_and_precede(
    make_orchestrator: OrchestratorFactory, model: ScriptedLLMServer
) -> None:
    model.push(
        slow(
            ScriptedReply(content="Let me look first.", tool_calls=[call("list_files", path=".")])
        ),
        slow(ScriptedReply(content=ANSWER), pause_s=0.3),
    )
    async with (
        make_orchestrator() as orch,
        serving(orch.app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        async with http.stream(
            "POST", "/orchestrate", json={"query": "Look around"},
            headers={"accept": "text/event-stream"},
        ) as response:  # fmt: skip
            events = await timed_sse(response)
        task_id = (await http.get("/tasks")).json()["tasks"][0]["task_id"]
        replayed = await read_sse(await http.get(f"/tasks/{task_id}/events"))

    kinds = [e["event"] for e in events]
    calls = [i for i, kind in enumerate(kinds) if kind == "model.call"]
    tool_result = kinds.index("tool.result")
    steps = [
        json.loads(e["data"])["data"]["step"] if e["event"] == "token" else None for e in events
    ]
    assert len(calls) == 2 and calls[0] < tool_result < calls[1]
    assert {steps[i] for i in range(calls[0])} - {None} == {1}
    assert {steps[i] for i in range(tool_result + 1, calls[1])} - {None} == {2}
    assert text_of(events, 1) == "Let me look first." and text_of(events, 2) == ANSWER
    # A replay after the end has the steps only: tokens are live, never stored.
    assert kinds[-1] == "result"
    assert [e["id"] for e in replayed] == [e["id"] for e in events if e["event"] != "token"]


async def test_a_stream_that_breaks_mid_turn_is_discarded_and_the_turn_asked_again(
    make_orchestrator: OrchestratorFactory,
    model: ScriptedLLMServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "impatient.yaml"
    config.write_text(
        "models:\n  - name: scripted\n    provider: openai\n"
        f"    base_url: {model.openai_url}\n    model: scripted-model\n    api_key: test-key\n"
        "    chunk_timeout: 0.3\nrouting:\n  primary: scripted\n"
    )
    monkeypatch.setenv("ANVYL_CONFIG", str(config))
    model.push(
        ScriptedReply(content="This text never ends", chunk_size=4, stall_before_first_token=0.5,
                      stall_after_chunks=2, stall_seconds=3),
        ScriptedReply(content=ANSWER),
    )  # fmt: skip
    async with (
        make_orchestrator() as orch,
        serving(orch.app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
        http.stream("POST", "/orchestrate", json={"query": "Describe it"},
                    headers={"accept": "text/event-stream"}) as response,
    ):  # fmt: skip
        events = await timed_sse(response)
    tokens = [json.loads(e["data"])["data"] for e in events if e["event"] == "token"]
    result = json.loads(events[-1]["data"])["data"]
    assert tokens[-1]["kind"] == "discard"
    assert "".join(t["text"] for t in tokens).startswith("This")
    assert result["status"] == "succeeded" and result["result"] == ANSWER
    assert result["metadata"]["model_calls"][0]["fallbacks"][0] == "scripted"
