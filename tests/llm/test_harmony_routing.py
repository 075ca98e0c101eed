"""gpt-oss harmony output through the router: no marker reaches the caller, streamed or not."""

from __future__ import annotations

import json

from llm_helpers import ask, endpoint, router

from anvyl.orchestrator.llm import ContentDelta, FinalResponse, ReasoningDelta, ToolCallDelta
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply

RAW = (
    "<|channel|>analysis<|message|>Thinking about files.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.list_files <|constrain|>json"
    '<|message|>{"path": "."}<|call|>'
)
ANSWER = (
    "<|channel|>analysis<|message|>Short answer.<|end|><|start|>assistant<|channel|>final"
    "<|message|>All good.<|return|>"
)


async def test_raw_harmony_content_is_normalized_non_streaming() -> None:
    with ScriptedLLMServer([ScriptedReply(content=RAW), ScriptedReply(content=ANSWER)]) as server:
        async with router(endpoint("gpt-oss", server.openai_url)) as r:
            call = await r.complete(ask())
            answer = await r.complete(ask())
    assert call.reasoning == "Thinking about files."
    assert call.content == ""
    assert [(c.name, json.loads(c.arguments)) for c in call.tool_calls] == [
        ("list_files", {"path": "."})
    ]
    assert call.finish_reason == "tool_calls"
    assert (answer.reasoning, answer.content) == ("Short answer.", "All good.")


async def test_raw_harmony_content_is_normalized_in_streams() -> None:
    with ScriptedLLMServer(default=ScriptedReply(content=RAW + ANSWER, chunk_size=3)) as server:
        async with router(endpoint("gpt-oss", server.openai_url)) as r:
            events = [event async for event in r.stream(ask(stream=True))]
    text = "".join(e.text for e in events if isinstance(e, ContentDelta | ReasoningDelta))
    assert "<|" not in text and "|>" not in text
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == (
        "Thinking about files.Short answer."
    )
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "All good."
    assert any(isinstance(e, ToolCallDelta) and e.name == "list_files" for e in events)
    final = events[-1]
    assert isinstance(final, FinalResponse)
    assert json.loads(final.response.tool_calls[0].arguments) == {"path": "."}


async def test_vllm_reasoning_content_field_is_kept() -> None:
    reply = ScriptedReply(content="Answer.", reasoning="vLLM parsed this reasoning.")
    with ScriptedLLMServer(default=reply) as server:
        async with router(endpoint("gpt-oss", server.openai_url)) as r:
            response = await r.complete(ask())
            events = [event async for event in r.stream(ask(stream=True))]
    assert (response.reasoning, response.content) == ("vLLM parsed this reasoning.", "Answer.")
    final = events[-1]
    assert isinstance(final, FinalResponse)
    assert final.response.reasoning == "vLLM parsed this reasoning."
