"""Structured output: the answer is validated against the schema and retried once when invalid."""

from __future__ import annotations

import pytest
from llm_helpers import ask, endpoint, router

from anvyl.orchestrator.llm import FinalResponse, SchemaValidationFailed, StreamError
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply

SCHEMA = {
    "type": "object",
    "properties": {"workers": {"type": "integer", "minimum": 0}, "cni": {"type": "string"}},
    "required": ["workers", "cni"],
    "additionalProperties": False,
}


async def test_valid_answer_is_parsed() -> None:
    with ScriptedLLMServer(
        default=ScriptedReply(content='```json\n{"workers": 3, "cni": "calico"}\n```')
    ) as s:
        async with router(endpoint("p", s.openai_url)) as r:
            response = await r.complete(ask(response_schema=SCHEMA))
    assert response.parsed == {"workers": 3, "cni": "calico"}
    body = s.requests[0].body
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert '"workers"' in body["messages"][0]["content"]  # the schema is in the prompt as well


async def test_invalid_answer_is_retried_once_with_the_validation_error() -> None:
    replies = [
        ScriptedReply(content='{"workers": "three", "cni": "calico"}'),
        ScriptedReply(content='{"workers": 3, "cni": "calico"}'),
    ]
    with ScriptedLLMServer(replies) as s:
        async with router(endpoint("p", s.openai_url)) as r:
            response = await r.complete(ask(response_schema=SCHEMA))
    assert response.parsed == {"workers": 3, "cni": "calico"}
    retry_messages = s.requests[1].body["messages"]
    assert retry_messages[-2] == {
        "role": "assistant",
        "content": '{"workers": "three", "cni": "calico"}',
    }
    assert (
        "workers" in retry_messages[-1]["content"]
        and "not of type" in retry_messages[-1]["content"]
    )


async def test_still_invalid_after_the_retry_raises() -> None:
    with ScriptedLLMServer(default=ScriptedReply(content="not json at all")) as s:
        async with router(endpoint("p", s.openai_url)) as r:
            with pytest.raises(SchemaValidationFailed) as failed:
                await r.complete(ask(response_schema=SCHEMA))
    assert failed.value.content == "not json at all"
    assert len(s.requests) == 2


async def test_streamed_answer_is_validated() -> None:
    replies = [
        ScriptedReply(content='{"workers": 1, "cni": "flannel"}'),
        ScriptedReply(content='{"workers": -1, "cni": "flannel"}'),
    ]
    with ScriptedLLMServer(replies) as s:
        async with router(endpoint("p", s.openai_url)) as r:
            good = [e async for e in r.stream(ask(response_schema=SCHEMA, stream=True))]
            bad = [e async for e in r.stream(ask(response_schema=SCHEMA, stream=True))]
    assert isinstance(good[-1], FinalResponse) and good[-1].response.parsed["cni"] == "flannel"
    assert isinstance(bad[-1], StreamError) and "minimum" in bad[-1].message
