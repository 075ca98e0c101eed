"""Tool calls: OpenAI streamed deltas by index, Anthropic tool_use/tool_result both ways."""

from __future__ import annotations

import json

from llm_helpers import endpoint, router

from anvyl.orchestrator.llm import (
    ChatMessage,
    FinalResponse,
    FunctionCall,
    FunctionDefinition,
    ModelRequest,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
)
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply, ScriptedToolCall

TOOLS = [
    ToolDefinition(
        function=FunctionDefinition(
            name="list_files",
            description="List files",
            parameters={"type": "object", "properties": {"path": {"type": "string"}}},
        )
    ),
    ToolDefinition(
        function=FunctionDefinition(
            name="git_status",
            description="Git status",
            parameters={"type": "object", "properties": {"short": {"type": "boolean"}}},
        )
    ),
]
CALLS = [
    ScriptedToolCall(
        "list_files", json.dumps({"path": "src/anvyl/orchestrator"}), id="call_aaa111"
    ),
    ScriptedToolCall(
        "git_status", json.dumps({"short": True, "extra": "x" * 20}), id="call_bbb222"
    ),
]

CONVERSATION = [
    ChatMessage(role="system", content="You are a coding agent."),
    ChatMessage(role="user", content="What changed?"),
    ChatMessage(
        role="assistant",
        content="Let me look.",
        tool_calls=[
            ToolCall(
                id="call_aaa111",
                function=FunctionCall(name="list_files", arguments='{"path": "."}'),
            ),
            ToolCall(id="call_bbb222", function=FunctionCall(name="git_status", arguments="{}")),
        ],
    ),
    ChatMessage(role="tool", tool_call_id="call_aaa111", content="README.md"),
    ChatMessage(role="tool", tool_call_id="call_bbb222", content="clean"),
]


async def test_openai_streamed_tool_calls_interleaved_are_assembled_by_index() -> None:
    with ScriptedLLMServer(default=ScriptedReply(tool_calls=CALLS, chunk_size=3)) as server:
        async with router(endpoint("p", server.openai_url)) as r:
            request = ModelRequest(messages=CONVERSATION, tools=TOOLS, stream=True)
            events = [event async for event in r.stream(request)]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    indices = [d.index for d in deltas if d.arguments]
    assert indices[:4] == [0, 1, 0, 1]  # really interleaved on the wire
    final = events[-1]
    assert isinstance(final, FinalResponse)
    calls = final.response.tool_calls
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        (call.id, call.name, json.loads(call.arguments)) for call in CALLS
    ]
    assert final.response.finish_reason == "tool_calls"
    sent = server.requests[0].body
    assert sent["tools"][0]["function"]["name"] == "list_files"
    assert sent["messages"][3] == {
        "role": "tool",
        "tool_call_id": "call_aaa111",
        "content": "README.md",
    }
    assert sent["messages"][2]["tool_calls"][1]["id"] == "call_bbb222"


async def test_openai_non_streaming_tool_calls() -> None:
    with ScriptedLLMServer(default=ScriptedReply(tool_calls=CALLS)) as server:
        async with router(endpoint("p", server.openai_url)) as r:
            response = await r.complete(ModelRequest(messages=CONVERSATION, tools=TOOLS))
    assert [(c.id, c.name) for c in response.tool_calls] == [
        ("call_aaa111", "list_files"),
        ("call_bbb222", "git_status"),
    ]
    assert json.loads(response.tool_calls[0].arguments) == {"path": "src/anvyl/orchestrator"}


def _check_anthropic_request(body: dict) -> None:
    assert body["system"] == "You are a coding agent."
    assert body["tools"][0] == {
        "name": "list_files",
        "description": "List files",
        "input_schema": TOOLS[0].function.parameters,
    }
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assistant = body["messages"][1]["content"]
    assert assistant[0] == {"type": "text", "text": "Let me look."}
    assert assistant[1] == {
        "type": "tool_use",
        "id": "call_aaa111",
        "name": "list_files",
        "input": {"path": "."},
    }
    results = body["messages"][2]["content"]
    assert [(b["type"], b["tool_use_id"], b["content"]) for b in results] == [
        ("tool_result", "call_aaa111", "README.md"),
        ("tool_result", "call_bbb222", "clean"),
    ]


async def test_anthropic_tool_use_mapping_both_ways() -> None:
    reply = ScriptedReply(
        content="Checking.",
        reasoning="need files",
        tool_calls=CALLS[:1],
        prompt_tokens=30,
        completion_tokens=12,
    )
    with ScriptedLLMServer(default=reply) as server:
        claude = endpoint(
            "claude",
            server.anthropic_url,
            provider="anthropic",
            model="claude-3-haiku-20240307",
            api_key="sk-ant-test",
        )
        async with router(claude) as r:
            response = await r.complete(ModelRequest(messages=CONVERSATION, tools=TOOLS))
    _check_anthropic_request(server.requests[0].body)
    headers = server.requests[0].headers
    # The SDK sends the key as x-api-key or, in newer versions, as a bearer token.
    assert "sk-ant-test" in (headers.get("x-api-key", "") + headers.get("authorization", ""))
    assert response.content == "Checking."
    assert response.reasoning == "need files"
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls[0].id == "call_aaa111"
    assert json.loads(response.tool_calls[0].arguments) == json.loads(CALLS[0].arguments)
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (30, 12)
    assert response.metadata.provider == "anthropic"


async def test_anthropic_streaming_tool_use() -> None:
    reply = ScriptedReply(content="Checking.", tool_calls=CALLS, chunk_size=5)
    with ScriptedLLMServer(default=reply) as server:
        claude = endpoint("claude", server.anthropic_url, provider="anthropic", model="claude-x")
        async with router(claude) as r:
            request = ModelRequest(messages=CONVERSATION, tools=TOOLS, stream=True)
            events = [event async for event in r.stream(request)]
    _check_anthropic_request(server.requests[0].body)
    assert server.requests[0].body["stream"] is True
    final = events[-1]
    assert isinstance(final, FinalResponse)
    assert final.response.content == "Checking."
    assert [(c.id, c.name, json.loads(c.arguments)) for c in final.response.tool_calls] == [
        (call.id, call.name, json.loads(call.arguments)) for call in CALLS
    ]
    starts = [e for e in events if isinstance(e, ToolCallDelta) and e.name]
    assert [(s.index, s.id) for s in starts] == [(0, "call_aaa111"), (1, "call_bbb222")]
    assert final.response.usage.completion_tokens == reply.completion_tokens
