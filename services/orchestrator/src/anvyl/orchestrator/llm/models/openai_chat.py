"""OpenAI chat-completions shape.

Every vendor whose `api_shape` is `openai_chat`: gpt-oss/vLLM, mlx-lm server, Ollama, LM Studio,
OpenAI, xAI and Groq.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx
import openai

from anvyl.gpt_oss.harmony import HarmonyStreamParser, parse_harmony_text
from anvyl.orchestrator.llm.config import ModelEndpoint
from anvyl.orchestrator.llm.errors import EndpointError
from anvyl.orchestrator.llm.models.base import (
    ModelResult,
    ModelStreamItem,
    SdkErrors,
    SdkModel,
    StreamAccumulator,
    ToolCallAssembler,
    client_timeout,
    endpoint_timeout,
)
from anvyl.orchestrator.llm.types import FunctionCall, ModelRequest, ToolCall, Usage

_ERRORS = SdkErrors(
    status=openai.APIStatusError,
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    transport=(httpx.HTTPError,),
    base=openai.OpenAIError,
)
translate_error = _ERRORS.translate


def _reasoning_of(obj: Any) -> str:
    # vLLM uses reasoning_content (older) or reasoning (newer); both are extra fields to the SDK.
    return getattr(obj, "reasoning_content", None) or getattr(obj, "reasoning", None) or ""


class OpenAIChatModel(SdkModel):
    errors = _ERRORS

    def __init__(self, endpoint: ModelEndpoint) -> None:
        self.endpoint = endpoint
        api_key = endpoint.api_key.get_secret_value() if endpoint.api_key else "not-needed"
        self._client = openai.AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=api_key,
            max_retries=0,  # the router retries, with its own backoff and fallback
            timeout=client_timeout(httpx.Timeout, endpoint),
        )

    def _arguments(self, request: ModelRequest, stream: bool) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": [m.model_dump(exclude_none=True) for m in request.messages],
        }
        if request.tools:
            arguments["tools"] = [t.model_dump() for t in request.tools]
        if request.temperature is not None:
            arguments["temperature"] = request.temperature
        if request.max_tokens is not None:
            arguments["max_tokens"] = request.max_tokens
        if request.response_schema is not None:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": request.response_schema},
            }
        if stream:
            arguments["stream"] = True
            arguments["stream_options"] = {"include_usage": True}
        else:
            # Non-streaming: the read timeout is the wait for the answer to start.
            arguments["timeout"] = endpoint_timeout(
                httpx.Timeout, self.endpoint, self.endpoint.first_token_timeout
            )
        return arguments

    async def complete(self, request: ModelRequest) -> ModelResult:
        try:
            completion = await self._client.chat.completions.create(
                **self._arguments(request, stream=False)
            )
        except Exception as exc:
            raise translate_error(exc) from exc
        if not completion.choices:
            raise EndpointError("answer without choices", retryable=True, kind="protocol")
        choice = completion.choices[0]
        message = choice.message
        content = message.content or ""
        reasoning = _reasoning_of(message)
        tool_calls = [
            ToolCall(
                id=call.id,
                function=FunctionCall(
                    name=call.function.name, arguments=call.function.arguments or "{}"
                ),
            )
            for call in (message.tool_calls or [])
            if call.type == "function"
        ]
        if self.endpoint.harmony and content:
            parsed = parse_harmony_text(content)
            content = parsed.content
            reasoning = (reasoning + parsed.reasoning) if parsed.reasoning else reasoning
            tool_calls += [
                ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments or "{}"))
                for c in parsed.tool_calls
            ]
        usage = Usage()
        if completion.usage is not None:
            usage = Usage(
                prompt_tokens=completion.usage.prompt_tokens or 0,
                completion_tokens=completion.usage.completion_tokens or 0,
            )
        finish_reason = choice.finish_reason or "stop"
        if tool_calls and finish_reason == "stop":
            finish_reason = "tool_calls"
        return ModelResult(
            model_id=completion.model or self.endpoint.model,
            content=content,
            reasoning=reasoning,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            usage=usage,
        )

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelStreamItem, None]:
        accumulator = StreamAccumulator(self.endpoint.model)
        harmony = HarmonyStreamParser() if self.endpoint.harmony else None
        try:
            chunks = await self._client.chat.completions.create(
                **self._arguments(request, stream=True)
            )
            async with chunks:
                async for chunk in chunks:
                    if chunk.model:
                        accumulator.result.model_id = chunk.model
                    if chunk.usage is not None:
                        accumulator.result.usage = Usage(
                            prompt_tokens=chunk.usage.prompt_tokens or 0,
                            completion_tokens=chunk.usage.completion_tokens or 0,
                        )
                    for choice in chunk.choices[:1]:
                        delta = choice.delta
                        if reasoning := _reasoning_of(delta):
                            yield accumulator.reasoning(reasoning)
                        if delta.content:
                            if harmony is not None:
                                for event in accumulator.harmony(harmony.feed(delta.content)):
                                    yield event
                            else:
                                yield accumulator.content(delta.content)
                        for call in delta.tool_calls or []:
                            function = call.function
                            yield accumulator.tools.add(
                                ("openai", call.index),
                                call.id,
                                function.name if function else None,
                                function.arguments if function else None,
                            )
                        if choice.finish_reason:
                            accumulator.result.finish_reason = choice.finish_reason
        except Exception as exc:
            raise translate_error(exc) from exc
        if harmony is not None:
            for event in accumulator.harmony(harmony.finish()):
                yield event
        yield accumulator.done()


__all__ = ["OpenAIChatModel", "ToolCallAssembler", "translate_error"]
