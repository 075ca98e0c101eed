"""In-process models through the runner registry of ``anvyl.gpt_oss.runners`` (mlx, vllm, ...)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from anvyl.gpt_oss.harmony import HarmonyStreamParser, parse_harmony_text
from anvyl.gpt_oss.runners import GenerationRequest, LocalRunner, RunnerUnavailable, get_runner
from anvyl.orchestrator.llm.config import ModelEndpoint
from anvyl.orchestrator.llm.errors import EndpointError
from anvyl.orchestrator.llm.models.base import (
    ModelResult,
    ModelStreamItem,
    StreamAccumulator,
)
from anvyl.orchestrator.llm.types import FunctionCall, ModelRequest, ToolCall, Usage

# One loaded model per (runner, model path) in this process, however many endpoints name it.
_SHARED_RUNNERS: dict[tuple[str, str], LocalRunner] = {}


def shared_runner(runner_name: str, model: str, options: dict[str, Any]) -> LocalRunner:
    key = (runner_name, model)
    if key not in _SHARED_RUNNERS:
        _SHARED_RUNNERS[key] = get_runner(runner_name)(model, **options)
    return _SHARED_RUNNERS[key]


def generation_request(request: ModelRequest) -> GenerationRequest:
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        data = message.model_dump(exclude_none=True)
        if message.tool_calls:
            # Chat templates want arguments as objects; the wire shape carries JSON strings.
            data["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.function.name,
                        "arguments": _loads(c.function.arguments),
                    },
                }
                for c in message.tool_calls
            ]
        messages.append(data)
    return GenerationRequest(
        messages=messages,
        tools=[t.model_dump() for t in request.tools] if request.tools else None,
        max_tokens=request.max_tokens or 512,
        temperature=request.temperature or 0.0,
    )


def _loads(arguments: str) -> Any:
    import json

    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments


class LocalRunnerModel:
    def __init__(self, endpoint: ModelEndpoint) -> None:
        self.endpoint = endpoint
        assert endpoint.runner is not None
        self.runner = shared_runner(endpoint.runner, endpoint.model, endpoint.runner_options)

    async def complete(self, request: ModelRequest) -> ModelResult:
        try:
            generated = await self.runner.generate(generation_request(request))
        except RunnerUnavailable as exc:
            raise EndpointError(str(exc), retryable=False, kind="runner_unavailable") from exc
        parsed = parse_harmony_text(generated.text)
        tool_calls = [
            ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments or "{}"))
            for c in parsed.tool_calls
        ]
        return ModelResult(
            model_id=generated.model_id,
            content=parsed.content,
            reasoning=parsed.reasoning,
            tool_calls=tool_calls,
            finish_reason="tool_calls" if tool_calls else generated.finish_reason,
            usage=Usage(
                prompt_tokens=generated.prompt_tokens,
                completion_tokens=generated.completion_tokens,
            ),
        )

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelStreamItem, None]:
        accumulator = StreamAccumulator(self.endpoint.model)
        parser = HarmonyStreamParser()
        try:
            async for chunk in self.runner.stream(generation_request(request)):
                for event in accumulator.harmony(parser.feed(chunk.text)):
                    yield event
                accumulator.result.usage = Usage(
                    prompt_tokens=chunk.prompt_tokens, completion_tokens=chunk.completion_tokens
                )
                if chunk.finish_reason:
                    accumulator.result.finish_reason = chunk.finish_reason
        except RunnerUnavailable as exc:
            raise EndpointError(str(exc), retryable=False, kind="runner_unavailable") from exc
        for event in accumulator.harmony(parser.finish()):
            yield event
        yield accumulator.done()

    async def probe(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.runner.load(), timeout_s)
        except TimeoutError as exc:
            raise EndpointError("runner still loading", retryable=True, kind="timeout") from exc
        except RunnerUnavailable as exc:
            raise EndpointError(str(exc), retryable=False, kind="runner_unavailable") from exc

    async def aclose(self) -> None:
        """Shared runners outlive one router; they are closed with :func:`close_shared_runners`."""


async def close_shared_runners() -> None:
    while _SHARED_RUNNERS:
        _, runner = _SHARED_RUNNERS.popitem()
        await runner.close()
