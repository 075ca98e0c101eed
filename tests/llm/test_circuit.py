"""Circuit breaker: a dead primary is skipped at no cost, then probed after the cool-down."""

from __future__ import annotations

import asyncio
import contextlib

from llm_helpers import ask, endpoint, router

from anvyl.orchestrator.llm.circuit import CircuitBreaker, CircuitState
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply


def test_breaker_states_with_a_manual_clock() -> None:
    now = [100.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=lambda: now[0])
    assert breaker.allow() and breaker.state is CircuitState.closed
    breaker.record_failure()
    assert breaker.state is CircuitState.closed
    breaker.record_failure()
    assert breaker.state is CircuitState.open and not breaker.allow()
    now[0] += 10
    assert breaker.state is CircuitState.half_open
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # a second caller waits while the probe is out
    breaker.record_failure()
    assert breaker.state is CircuitState.open  # a failed probe reopens at once
    now[0] += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.closed and breaker.allow()


async def test_circuit_opens_skips_the_primary_and_closes_after_a_good_probe() -> None:
    primary_replies = [ScriptedReply.error(500)] * 3 + [ScriptedReply(content="primary is back")]
    with (
        ScriptedLLMServer(primary_replies) as primary,
        ScriptedLLMServer(default=ScriptedReply(content="backup")) as backup,
    ):
        async with router(
            endpoint("primary", primary.openai_url, retries=0),
            endpoint("backup", backup.openai_url),
            failure_threshold=3,
            cooldown_s=0.5,
        ) as r:
            for _ in range(3):
                assert (await r.complete(ask())).content == "backup"
            assert r.circuits["primary"].state is CircuitState.open
            skipped = await r.complete(ask())
            assert skipped.content == "backup"
            assert skipped.metadata.attempts[0].skipped
            assert skipped.metadata.attempts[0].error_type == "circuit_open"
            assert len(primary.requests) == 3  # the open circuit sent nothing

            await asyncio.sleep(0.6)
            assert r.circuits["primary"].state is CircuitState.half_open
            probed = await r.complete(ask())
            assert probed.content == "primary is back"
            assert r.circuits["primary"].state is CircuitState.closed


async def test_failed_half_open_probe_reopens_the_circuit() -> None:
    with (
        ScriptedLLMServer(default=ScriptedReply.error(502)) as primary,
        ScriptedLLMServer(default=ScriptedReply(content="backup")) as backup,
    ):
        async with router(
            endpoint("primary", primary.openai_url, retries=0),
            endpoint("backup", backup.openai_url),
            failure_threshold=1,
            cooldown_s=0.3,
        ) as r:
            await r.complete(ask())
            assert r.circuits["primary"].state is CircuitState.open
            await asyncio.sleep(0.35)
            await r.complete(ask())  # the probe fails
            assert len(primary.requests) == 2
            assert r.circuits["primary"].state is CircuitState.open
            await r.complete(ask())
            assert len(primary.requests) == 2


async def test_bad_requests_do_not_open_the_circuit() -> None:
    with ScriptedLLMServer(default=ScriptedReply.error(400)) as server:
        async with router(endpoint("p", server.openai_url), failure_threshold=1) as r:
            for _ in range(2):
                try:
                    await r.complete(ask())
                except Exception as exc:  # AllModelsFailed: the only endpoint refused the request
                    assert "HTTP 400" in str(exc)
            assert r.circuits["p"].state is CircuitState.closed
            assert len(server.requests) == 2


async def test_a_probe_abandoned_by_the_caller_frees_the_half_open_slot() -> None:
    replies = [ScriptedReply.error(500), ScriptedReply(content="abcdefgh", chunk_size=2)]
    with ScriptedLLMServer(replies, default=ScriptedReply(content="ok")) as primary:
        async with router(
            endpoint("primary", primary.openai_url, retries=0), failure_threshold=1, cooldown_s=0.2
        ) as r:
            with contextlib.suppress(Exception):
                await r.complete(ask())
            await asyncio.sleep(0.25)
            stream = r.stream(ask(stream=True))
            await anext(stream)  # the half-open probe is under way ...
            await stream.aclose()  # ... and the caller walks away
            assert r.circuits["primary"].allow()  # a new probe may go out
