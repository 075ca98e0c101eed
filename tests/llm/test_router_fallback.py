"""Fallback, retries and timeouts with the real openai SDK against scripted local servers."""

from __future__ import annotations

import time

import pytest
from llm_helpers import ask, endpoint, router

from anvyl.orchestrator.llm import (
    AllModelsFailed,
    ContentDelta,
    FinalResponse,
    ModelRouter,
    NoModelConfigured,
    StreamError,
)
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply, refused_port


async def test_refused_connection_falls_back_to_next_endpoint() -> None:
    dead = endpoint("dead", f"http://127.0.0.1:{refused_port()}/v1", retries=1)
    with ScriptedLLMServer(default=ScriptedReply(content="from backup")) as backup:
        async with router(dead, endpoint("backup", backup.openai_url)) as r:
            response = await r.complete(ask())
    assert response.content == "from backup"
    assert response.metadata.endpoint == "backup"
    errors = [(a.endpoint, a.ok, a.error_type) for a in response.metadata.attempts]
    assert errors == [
        ("dead", False, "connection"),
        ("dead", False, "connection"),
        ("backup", True, None),
    ]


async def test_server_error_is_retried_on_the_same_endpoint_then_succeeds() -> None:
    replies = [ScriptedReply.error(500), ScriptedReply(content="second try")]
    with ScriptedLLMServer(replies) as server:
        async with router(endpoint("primary", server.openai_url, retries=2)) as r:
            response = await r.complete(ask())
    assert response.content == "second try"
    assert [a.status_code for a in response.metadata.attempts] == [500, None]
    assert len(server.requests) == 2


async def test_429_retry_after_is_honoured() -> None:
    replies = [ScriptedReply.error(429, retry_after=0.4), ScriptedReply(content="after waiting")]
    with ScriptedLLMServer(replies) as server:
        async with router(endpoint("primary", server.openai_url, retries=1)) as r:
            response = await r.complete(ask())
    assert response.content == "after waiting"
    waited = server.requests[1].received_at - server.requests[0].received_at
    assert waited >= 0.4
    assert response.metadata.attempts[0].status_code == 429


async def test_429_with_long_retry_after_moves_to_the_next_endpoint() -> None:
    with (
        ScriptedLLMServer(default=ScriptedReply.error(429, retry_after=60)) as busy,
        ScriptedLLMServer(default=ScriptedReply(content="backup")) as backup,
    ):
        started = time.perf_counter()
        async with router(
            endpoint("busy", busy.openai_url, retries=3), endpoint("backup", backup.openai_url)
        ) as r:
            response = await r.complete(ask())
    assert response.content == "backup"
    assert time.perf_counter() - started < 5
    assert len(busy.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_client_errors_are_not_retried_but_fall_back(status: int) -> None:
    with (
        ScriptedLLMServer(default=ScriptedReply.error(status)) as bad,
        ScriptedLLMServer(default=ScriptedReply(content="backup")) as backup,
    ):
        async with router(
            endpoint("bad", bad.openai_url, retries=3), endpoint("backup", backup.openai_url)
        ) as r:
            response = await r.complete(ask())
    assert response.content == "backup"
    assert len(bad.requests) == 1
    assert response.metadata.attempts[0].status_code == status


async def test_first_token_stall_non_streaming_falls_back() -> None:
    with (
        ScriptedLLMServer(
            default=ScriptedReply(content="late", stall_before_first_token=5)
        ) as slow,
        ScriptedLLMServer(default=ScriptedReply(content="quick")) as backup,
    ):
        started = time.perf_counter()
        async with router(
            endpoint("slow", slow.openai_url, first_token_timeout=0.3, retries=0),
            endpoint("backup", backup.openai_url),
        ) as r:
            response = await r.complete(ask())
    assert response.content == "quick"
    assert time.perf_counter() - started < 3
    assert response.metadata.attempts[0].error_type == "timeout"


async def test_total_timeout_bounds_a_call() -> None:
    with ScriptedLLMServer(default=ScriptedReply(content="x", stall_before_first_token=5)) as slow:
        async with router(endpoint("slow", slow.openai_url, timeout=0.3, retries=0)) as r:
            with pytest.raises(AllModelsFailed) as failed:
                await r.complete(ask())
    assert failed.value.attempts[0].error_type == "total_timeout"


async def test_stream_first_token_stall_falls_back_before_anything_reached_the_caller() -> None:
    stalled = ScriptedReply(content="never", stall_before_first_token=5)
    with (
        ScriptedLLMServer(default=stalled) as slow,
        ScriptedLLMServer(default=ScriptedReply(content="streamed from backup")) as backup,
    ):
        async with router(
            endpoint("slow", slow.openai_url, first_token_timeout=0.3, retries=0),
            endpoint("backup", backup.openai_url),
        ) as r:
            events = [event async for event in r.stream(ask(stream=True))]
    text = "".join(e.text for e in events if isinstance(e, ContentDelta))
    assert text == "streamed from backup"
    final = events[-1]
    assert isinstance(final, FinalResponse)
    assert final.response.metadata.endpoint == "backup"
    assert final.response.metadata.attempts[0].error_type == "first_token_timeout"
    assert final.response.metadata.ttft_s is not None


async def test_stream_stall_after_first_token_ends_with_error_event() -> None:
    stalls = ScriptedReply(
        content="abcdefghijkl", chunk_size=4, stall_after_chunks=1, stall_seconds=5
    )
    with (
        ScriptedLLMServer(default=stalls) as slow,
        ScriptedLLMServer(default=ScriptedReply(content="backup")) as backup,
    ):
        async with router(
            endpoint("slow", slow.openai_url, chunk_timeout=0.3, retries=0),
            endpoint("backup", backup.openai_url),
        ) as r:
            events = [event async for event in r.stream(ask(stream=True))]
    assert [e.text for e in events if isinstance(e, ContentDelta)] == ["abcd"]
    assert isinstance(events[-1], StreamError)
    assert "stalled" in events[-1].message
    assert events[-1].endpoint == "slow"
    assert backup.requests == []  # no silent switch once the caller has text


async def test_stream_server_error_before_first_token_falls_back() -> None:
    with (
        ScriptedLLMServer(default=ScriptedReply.error(503)) as broken,
        ScriptedLLMServer(default=ScriptedReply(content="ok")) as backup,
    ):
        async with router(
            endpoint("broken", broken.openai_url, retries=0), endpoint("backup", backup.openai_url)
        ) as r:
            events = [event async for event in r.stream(ask(stream=True))]
    assert isinstance(events[-1], FinalResponse)
    assert events[-1].response.content == "ok"


async def test_every_endpoint_failing_raises_all_models_failed_with_attempts() -> None:
    with ScriptedLLMServer(default=ScriptedReply.error(500)) as broken:
        async with router(
            endpoint("a", f"http://127.0.0.1:{refused_port()}/v1", retries=0),
            endpoint("b", broken.openai_url, retries=0),
        ) as r:
            with pytest.raises(AllModelsFailed) as failed:
                await r.complete(ask())
            with pytest.raises(AllModelsFailed):
                _ = [event async for event in r.stream(ask(stream=True))]
    assert [a.endpoint for a in failed.value.attempts] == ["a", "b"]
    assert "HTTP 500" in str(failed.value)


async def test_no_endpoint_raises_no_model_configured() -> None:
    with pytest.raises(NoModelConfigured):
        await ModelRouter([]).complete(ask())
    with pytest.raises(NoModelConfigured):
        _ = [event async for event in ModelRouter([]).stream(ask())]


async def test_usage_cost_and_metadata() -> None:
    reply = ScriptedReply(content="hi", prompt_tokens=1000, completion_tokens=2000)
    with ScriptedLLMServer(default=reply) as server:
        priced = endpoint(
            "priced",
            server.openai_url,
            model="gpt-4o-mini",
            price_input_per_mtok=1.0,
            price_output_per_mtok=2.0,
        )
        async with router(priced) as r:
            response = await r.complete(ask(temperature=0.2, max_tokens=5))
    assert response.usage.prompt_tokens == 1000 and response.usage.completion_tokens == 2000
    assert response.cost == pytest.approx((1000 * 1.0 + 2000 * 2.0) / 1e6)
    assert response.metadata.model_id == "scripted-model"
    assert response.metadata.latency_s > 0
    sent = server.requests[0].body
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 5 and sent["model"] == "gpt-4o-mini"
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"
