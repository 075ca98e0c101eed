"""Anthropic Messages shape, mapped to and from the OpenAI-style request and normalized result.

System messages become ``system``; assistant tool calls become ``tool_use`` blocks and ``tool``
messages become ``tool_result`` blocks in a user turn, with the same ids both ways.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from typing import Any

import anthropic
import httpx

from anvyl.orchestrator.llm.config import ModelEndpoint
from anvyl.orchestrator.llm.errors import EndpointError
from anvyl.orchestrator.llm.models.base import (
    ModelResult,
    ModelStreamItem,
    SdkErrors,
    SdkModel,
    StreamAccumulator,
    client_timeout,
    endpoint_timeout,
)
from anvyl.orchestrator.llm.types import ChatMessage, FunctionCall, ModelRequest, ToolCall, Usage

try:  # anthropic 2.x ships its own transport (httpx2) and raises its errors mid-stream
    import httpx2

    _TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
except ImportError:  # older SDKs use httpx
    _TRANSPORT_ERRORS = (httpx.HTTPError,)

DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}
_INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def anthropic_tool_id(call_id: str) -> str:
    """Anthropic ids must match ``[A-Za-z0-9_-]+``; OpenAI-style ids already do and stay as is."""
    return _INVALID_ID_CHARS.sub("_", call_id) or "call"


_ERRORS = SdkErrors(
    status=anthropic.APIStatusError,
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    transport=_TRANSPORT_ERRORS,
    base=anthropic.AnthropicError,
)
translate_error = _ERRORS.translate


def _arguments_object(arguments: str) -> Any:
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def to_anthropic_messages(messages: list[ChatMessage]) -> tuple[str | None, list[dict[str, Any]]]:
    """OpenAI-style messages to (system, messages); consecutive same-role turns are merged."""
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []

    def append(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        if message.role == "system":
            if message.content:
                system_parts.append(message.content)
        elif message.role == "user":
            append("user", [{"type": "text", "text": message.content or ""}])
        elif message.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            for call in message.tool_calls or []:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": anthropic_tool_id(call.id),
                        "name": call.function.name,
                        "input": _arguments_object(call.function.arguments),
                    }
                )
            append("assistant", blocks)
        else:  # tool result
            append(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": anthropic_tool_id(message.tool_call_id or ""),
                        "content": message.content or "",
                    }
                ],
            )
    return ("\n\n".join(system_parts) or None), turns


class AnthropicMessagesModel(SdkModel):
    errors = _ERRORS

    def __init__(self, endpoint: ModelEndpoint) -> None:
        self.endpoint = endpoint
        api_key = endpoint.api_key.get_secret_value() if endpoint.api_key else "not-set"
        self._client = anthropic.AsyncAnthropic(
            base_url=endpoint.base_url,
            api_key=api_key,
            max_retries=0,
            timeout=client_timeout(anthropic.Timeout, endpoint),
        )

    def _arguments(self, request: ModelRequest) -> dict[str, Any]:
        system, messages = to_anthropic_messages(request.messages)
        arguments: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": messages,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            arguments["system"] = system
        if request.tools:
            arguments["tools"] = [
                {
                    "name": tool.function.name,
                    "description": tool.function.description,
                    "input_schema": tool.function.parameters,
                }
                for tool in request.tools
            ]
        if request.temperature is not None:
            # SDK 1.x dropped the sampling parameters from its signature; the API still takes
            # them (models that reject other values accept 1: set `temperature: 1` on the endpoint).
            arguments["extra_body"] = {"temperature": request.temperature}
        return arguments

    async def complete(self, request: ModelRequest) -> ModelResult:
        arguments = self._arguments(request)
        # Non-streaming: the read timeout is the wait for the answer to start.
        arguments["timeout"] = endpoint_timeout(
            anthropic.Timeout, self.endpoint, self.endpoint.first_token_timeout
        )
        try:
            message = await self._client.messages.create(**arguments)
        except Exception as exc:
            raise translate_error(exc) from exc
        result = ModelResult(model_id=message.model or self.endpoint.model)
        for block in message.content:
            if block.type == "text":
                result.content += block.text
            elif block.type == "thinking":
                result.reasoning += block.thinking
            elif block.type == "tool_use":
                arguments_json = json.dumps(block.input, separators=(",", ":"))
                result.tool_calls.append(
                    ToolCall(
                        id=block.id,
                        function=FunctionCall(name=block.name, arguments=arguments_json),
                    )
                )
        result.finish_reason = _STOP_REASONS.get(message.stop_reason or "end_turn", "stop")
        result.usage = Usage(
            prompt_tokens=message.usage.input_tokens, completion_tokens=message.usage.output_tokens
        )
        return result

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelStreamItem, None]:
        accumulator = StreamAccumulator(self.endpoint.model)
        prompt_tokens = completion_tokens = 0
        try:
            events = await self._client.messages.create(**self._arguments(request), stream=True)
            async with events:
                async for event in events:
                    if event.type == "message_start":
                        accumulator.result.model_id = event.message.model or self.endpoint.model
                        prompt_tokens = event.message.usage.input_tokens
                        completion_tokens = event.message.usage.output_tokens
                    elif event.type == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use":
                            yield accumulator.tools.add(event.index, block.id, block.name, None)
                        elif block.type == "text" and block.text:
                            yield accumulator.content(block.text)
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            yield accumulator.content(delta.text)
                        elif delta.type == "input_json_delta":
                            if delta.partial_json:
                                yield accumulator.tools.add(
                                    event.index, None, None, delta.partial_json
                                )
                        elif delta.type == "thinking_delta":
                            yield accumulator.reasoning(delta.thinking)
                    elif event.type == "message_delta":
                        if event.delta.stop_reason:
                            accumulator.result.finish_reason = _STOP_REASONS.get(
                                event.delta.stop_reason, "stop"
                            )
                        completion_tokens = event.usage.output_tokens or completion_tokens
                    elif event.type == "error":  # pragma: no cover - servers send this mid-stream
                        raise EndpointError(str(event), retryable=True, kind="stream_error")
        except Exception as exc:
            raise translate_error(exc) from exc
        accumulator.result.usage = Usage(
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        yield accumulator.done()
