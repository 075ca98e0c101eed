"""OpenAI-compatible HTTP API over an in-process runner, with harmony output normalized.

Used for the mlx engine; on CUDA the CLI runs ``vllm serve`` with the gpt-oss parsers instead, which
already answers with clean ``reasoning_content`` and ``tool_calls``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from anvyl.gpt_oss.embeddings import StaticEmbedder, embeddings_router
from anvyl.gpt_oss.harmony import HarmonyStreamParser, collect
from anvyl.gpt_oss.runners import GenerationRequest, LocalRunner


class ChatCompletionBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = Field(default=None)


def _generation_request(body: ChatCompletionBody, default_max_tokens: int) -> GenerationRequest:
    messages = []
    for message in body.messages:
        # Chat templates expect tool-call arguments as objects, the OpenAI wire shape has strings.
        calls = message.get("tool_calls")
        if calls:
            message = dict(message)
            message["tool_calls"] = [
                {**call, "function": {**call["function"], "arguments": _loads(call)}}
                for call in calls
            ]
        messages.append(message)
    return GenerationRequest(
        messages=messages,
        tools=body.tools,
        max_tokens=body.max_completion_tokens or body.max_tokens or default_max_tokens,
        temperature=body.temperature if body.temperature is not None else 0.0,
    )


def _loads(call: dict[str, Any]) -> Any:
    arguments = call.get("function", {}).get("arguments", "{}")
    try:
        return json.loads(arguments) if isinstance(arguments, str) else arguments
    except json.JSONDecodeError:
        return arguments


def create_app(runner: LocalRunner, served_model_name: str | None = None) -> FastAPI:
    model_name = served_model_name or runner.model
    default_max_tokens = 1024

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runner.load()
        try:
            yield
        finally:
            await runner.close()

    app = FastAPI(title="anvyl gpt-oss", lifespan=lifespan)
    app.include_router(embeddings_router(StaticEmbedder()))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "anvyl"}],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionBody) -> JSONResponse | StreamingResponse:
        request = _generation_request(body, default_max_tokens)
        completion_id = "chatcmpl-" + uuid.uuid4().hex
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(
                _sse(runner, request, completion_id, model_name, include_usage),
                media_type="text/event-stream",
            )
        result = await runner.generate(request)
        parser = HarmonyStreamParser()
        parsed = collect(parser.feed(result.text) + parser.finish())
        message: dict[str, Any] = {"role": "assistant", "content": parsed.content or None}
        if parsed.reasoning:
            message["reasoning_content"] = parsed.reasoning
        finish_reason = result.finish_reason
        if parsed.tool_calls:
            finish_reason = "tool_calls"
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in parsed.tool_calls
            ]
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model_name,
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": {
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "total_tokens": result.prompt_tokens + result.completion_tokens,
                },
            }
        )

    return app


async def _sse(
    runner: LocalRunner,
    request: GenerationRequest,
    completion_id: str,
    model_name: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    parser = HarmonyStreamParser()
    finish_reason = "stop"
    saw_tool_call = False
    prompt_tokens = completion_tokens = 0
    async for piece in runner.stream(request):
        prompt_tokens, completion_tokens = piece.prompt_tokens, piece.completion_tokens
        finish_reason = piece.finish_reason or finish_reason
        for event in parser.feed(piece.text):
            saw_tool_call |= event.kind == "tool_call_start"
            yield chunk(_delta(event))
    for event in parser.finish():
        saw_tool_call |= event.kind == "tool_call_start"
        yield chunk(_delta(event))
    yield chunk({}, "tool_calls" if saw_tool_call else finish_reason)
    if include_usage:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_name,
            "choices": [],
            "usage": usage,
        }
        yield b"data: " + json.dumps(payload).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _delta(event: Any) -> dict[str, Any]:
    if event.kind == "content":
        return {"content": event.text}
    if event.kind == "reasoning":
        return {"reasoning_content": event.text}
    if event.kind == "tool_call_start":
        function = {"name": event.name, "arguments": ""}
        call = {"index": event.index, "id": event.tool_call_id, "type": "function"}
        return {"tool_calls": [{**call, "function": function}]}
    return {"tool_calls": [{"index": event.index, "function": {"arguments": event.text}}]}
