"""The router over in-process scripted models: fallback, streaming and normalisation, no network.

The wire-level tests (test_router_fallback.py, test_tool_calls.py) check the same behaviour through
the real SDKs; these pin the router's own rules and run in milliseconds.
"""

from __future__ import annotations

import json

import pytest
from llm_helpers import ask, scripted

from anvyl.orchestrator.llm import (
    AllModelsFailed,
    ContentDelta,
    FinalResponse,
    ModelRouter,
    ReasoningDelta,
    StreamError,
    ToolCallDelta,
)
from anvyl.orchestrator.llm.testing import ScriptedReply, ScriptedToolCall


async def test_fallback_follows_the_chain_retrying_only_what_may_pass_next_time() -> None:
    flaky = scripted("flaky", default=ScriptedReply.error(500), retries=1, backoff_base=0)
    denied = scripted("denied", default=ScriptedReply.error(401), retries=3)
    backup = scripted("backup", ScriptedReply(content="from backup"))
    async with ModelRouter.over(flaky, denied, backup) as router:
        response = await router.complete(ask())
    assert response.content == "from backup"
    assert response.metadata.endpoint == "backup"
    assert [(a.endpoint, a.status_code, a.ok) for a in response.metadata.attempts] == [
        ("flaky", 500, False),
        ("flaky", 500, False),  # one retry: a 500 may pass next time
        ("denied", 401, False),  # no retry: a 401 will not
        ("backup", None, True),
    ]
    assert (len(flaky.requests), len(denied.requests), len(backup.requests)) == (2, 1, 1)
    assert flaky.closed and backup.closed  # the router closes the clients it was given


async def test_an_open_circuit_skips_the_endpoint_without_calling_it() -> None:
    dead = scripted("dead", default=ScriptedReply.error(503), retries=0)
    backup = scripted("backup", default=ScriptedReply(content="ok"))
    async with ModelRouter.over(dead, backup, failure_threshold=2, cooldown_s=60) as router:
        for _ in range(3):
            response = await router.complete(ask())
    assert len(dead.requests) == 2
    assert response.metadata.attempts[0].skipped
    assert response.metadata.attempts[0].error_type == "circuit_open"


async def test_every_endpoint_failing_lists_every_attempt() -> None:
    a = scripted("a", default=ScriptedReply.error(500), retries=0)
    b = scripted("b", default=ScriptedReply.error(429, retry_after=60), retries=2)
    async with ModelRouter.over(a, b) as router:
        with pytest.raises(AllModelsFailed) as failed:
            await router.complete(ask())
    assert [(x.endpoint, x.status_code) for x in failed.value.attempts] == [("a", 500), ("b", 429)]


async def test_streamed_deltas_arrive_in_order_and_add_up_to_the_final_answer() -> None:
    reply = ScriptedReply(content="abcdefg", reasoning="hmm", chunk_size=3)
    model = scripted("m", reply)
    async with ModelRouter.over(model) as router:
        events = [event async for event in router.stream(ask(stream=True))]
    assert [(type(e).__name__, getattr(e, "text", None)) for e in events[:-1]] == [
        ("ReasoningDelta", "hmm"),
        ("ContentDelta", "abc"),
        ("ContentDelta", "def"),
        ("ContentDelta", "g"),
    ]
    final = events[-1]
    assert isinstance(final, FinalResponse)
    assert (final.response.content, final.response.reasoning) == ("abcdefg", "hmm")
    assert final.response.usage.total_tokens == 18
    assert final.response.metadata.ttft_s is not None


async def test_a_stream_falls_back_before_its_first_delta_but_not_after() -> None:
    broken = scripted("broken", default=ScriptedReply.error(503), retries=0)
    stalls = ScriptedReply(content="abcdefgh", chunk_size=4, stall_after_chunks=1, stall_seconds=5)
    stalling = scripted("stalling", stalls, chunk_timeout=0.1, retries=0)
    backup = scripted("backup", default=ScriptedReply(content="backup"))
    async with ModelRouter.over(broken, backup) as router:
        fell_back = [event async for event in router.stream(ask(stream=True))]
    async with ModelRouter.over(stalling, backup) as router:
        cut = [event async for event in router.stream(ask(stream=True))]
    assert isinstance(fell_back[-1], FinalResponse)
    assert fell_back[-1].response.metadata.endpoint == "backup"
    assert [e.text for e in cut if isinstance(e, ContentDelta)] == ["abcd"]
    assert isinstance(cut[-1], StreamError) and "stalled" in cut[-1].message
    assert len(backup.requests) == 1  # only the first stream reached it


async def test_tool_calls_are_normalised_streamed_or_not() -> None:
    calls = [
        ScriptedToolCall("list_files", json.dumps({"path": "src"}), id="call_1"),
        ScriptedToolCall("git_status", "", id="call_2"),  # no arguments at all
    ]
    model = scripted("m", default=ScriptedReply(tool_calls=calls, chunk_size=5))
    async with ModelRouter.over(model) as router:
        answer = await router.complete(ask())
        events = [event async for event in router.stream(ask(stream=True))]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.index, d.id, d.name) for d in deltas[:2]] == [
        (0, "call_1", "list_files"),
        (1, "call_2", "git_status"),
    ]
    assert {d.index for d in deltas[2:]} == {0}  # argument pieces name their call by index
    final = events[-1]
    assert isinstance(final, FinalResponse)
    for response in (answer, final.response):
        assert response.finish_reason == "tool_calls"
        assert [(c.id, c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
            ("call_1", "list_files", {"path": "src"}),
            ("call_2", "git_status", {}),
        ]


async def test_gpt_oss_harmony_tool_calls_become_ordinary_tool_calls() -> None:
    raw = (
        "<|channel|>analysis<|message|>Look first.<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.read_file <|constrain|>json<|message|>{"path": "README.md"}<|call|>'
    )
    model = scripted("gpt-oss", default=ScriptedReply(content=raw, chunk_size=7))
    async with ModelRouter.over(model) as router:
        answer = await router.complete(ask())
        events = [event async for event in router.stream(ask(stream=True))]
    text = "".join(e.text for e in events if isinstance(e, ContentDelta | ReasoningDelta))
    assert "<|" not in text
    final = events[-1]
    assert isinstance(final, FinalResponse)
    for response in (answer, final.response):
        assert (response.content, response.reasoning) == ("", "Look first.")
        assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
            ("read_file", {"path": "README.md"})
        ]


async def test_an_endpoints_temperature_and_output_budget_override_the_request() -> None:
    tuned = scripted("tuned", ScriptedReply(content="x"), temperature=0.7, max_output_tokens=99)
    plain = scripted("plain", ScriptedReply(content="y"))
    async with ModelRouter.over(tuned) as router:
        await router.complete(ask(temperature=0, max_tokens=4096))
    async with ModelRouter.over(plain) as router:
        await router.complete(ask(temperature=0, max_tokens=4096))
    assert (tuned.requests[0].temperature, tuned.requests[0].max_tokens) == (0.7, 99)
    assert (plain.requests[0].temperature, plain.requests[0].max_tokens) == (0, 4096)


async def test_cloud_cost_comes_from_the_vendor_table_and_self_hosted_is_free() -> None:
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
    claude = scripted(
        "claude", ScriptedReply(model="claude-3-haiku-20240307", **usage), provider="anthropic"
    )
    local = scripted(
        "ollama", ScriptedReply(model="claude-3-haiku-20240307", **usage), provider="ollama"
    )
    async with ModelRouter.over(claude) as router:
        cloud = await router.complete(ask())
    async with ModelRouter.over(local) as router:
        free = await router.complete(ask())
    assert cloud.cost == pytest.approx(0.25 + 1.25)
    assert free.cost == 0.0
