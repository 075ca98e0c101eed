"""The agent loop: the model picks tools, the tools run, their results go back, until an answer.

Stops at a final answer, the step limit or the token budget; the task's time limit and cancel reach
it as a cancellation from the queue. Independent read-only calls run concurrently; a call to a
destructive tool (or one outside the task's allow-list) waits for a person's approval first.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

from anvyl.orchestrator.llm import (
    ChatMessage,
    ContentDelta,
    FinalResponse,
    ModelRequest,
    ModelResponse,
    ModelRouter,
    ReasoningDelta,
    StreamError,
)
from anvyl.orchestrator.llm import ToolCall as ModelToolCall
from anvyl.orchestrator.loop.tools import ToolCall, Toolset

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
# Live model output: (step, kind, text), kind "content", "reasoning" or "discard" (the text of this
# step so far is void: the stream broke and the turn is asked again). Called per delta: keep it cheap.
OnDelta = Callable[[int, str, str], None]


class AgentStopped(RuntimeError):
    """The loop ended without a final answer (step limit, token budget)."""


class TaskPolicy(BaseModel):
    """Per-task tool policy: an allow-list (calls outside it need approval) and pre-approvals."""

    allowed_tools: list[str] | None = Field(default=None, description="None: every tool is allowed")
    pre_approved: list[str] = Field(default_factory=list, description="run without asking")


class Approvals(Protocol):
    async def ask(self, call: ModelToolCall, reason: str) -> tuple[bool, str | None]:
        """Wait for a person's decision on `call`: (approved, their note)."""
        ...


@dataclass(frozen=True)
class Limits:
    max_steps: int
    max_tokens: int  # the whole task's budget
    tool_output_chars: int
    temperature: float = 0.0  # sent with every model call, whatever the vendor
    max_output_tokens: int = 4096  # one call's output budget


@dataclass
class AgentResult:
    answer: str
    steps: int
    model_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    last_response: ModelResponse | None = None


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-(limit - head) :]}"


class AgentLoop:
    def __init__(
        self, router: ModelRouter, limits: Limits, on_delta: OnDelta | None = None
    ) -> None:
        self.router = router
        self.limits = limits
        self.on_delta = on_delta

    async def run(
        self,
        *,
        system_prompt: str,
        query: str,
        toolset: Toolset,
        emit: Emit,
        approvals: Approvals,
        policy: TaskPolicy,
    ) -> AgentResult:
        messages = [
            ChatMessage(role="system", content=system_prompt),
            ChatMessage(role="user", content=query),
        ]
        result = AgentResult(answer="", steps=0)
        definitions = toolset.definitions() or None
        for step in range(1, self.limits.max_steps + 1):
            result.steps = step
            request = ModelRequest(
                messages=messages,
                tools=definitions,
                temperature=self.limits.temperature,
                max_tokens=self.limits.max_output_tokens,
            )
            response = await self._turn(request, step)
            self._account(result, response, step)
            await emit("model.call", result.model_calls[-1] | {
                "content": response.content[:2000], "reasoning": response.reasoning[:2000],
                "tool_calls": [{"id": c.id, "name": c.name} for c in response.tool_calls],
            })  # fmt: skip
            if result.prompt_tokens + result.completion_tokens > self.limits.max_tokens:
                raise AgentStopped(
                    f"token budget of {self.limits.max_tokens} exceeded after {step} steps"
                )
            if not response.tool_calls:
                result.answer = response.content.strip()
                return result
            messages.append(ChatMessage(role="assistant", content=response.content or None,
                                        tool_calls=response.tool_calls))  # fmt: skip
            records = await self._run_calls(response.tool_calls, toolset, emit, approvals, policy)
            result.tool_calls.extend(records)
            for call, record in zip(response.tool_calls, records, strict=True):
                content = record.output if record.ok else f"ERROR: {record.error}"
                messages.append(ChatMessage(role="tool", tool_call_id=call.id, name=call.name,
                                            content=truncate(content, self.limits.tool_output_chars)))  # fmt: skip
        raise AgentStopped(f"step limit of {self.limits.max_steps} reached without a final answer")

    async def _turn(self, request: ModelRequest, step: int) -> ModelResponse:
        """One model turn, streamed: the deltas go to `on_delta` as they come. The router falls
        back to the next endpoint until the first delta; a stream that breaks after it is asked
        again without streaming (over the whole chain), and the listeners told to drop its text."""
        on_delta = self.on_delta
        async for item in self.router.stream(request):
            if isinstance(item, ContentDelta | ReasoningDelta):
                if on_delta is not None and item.text:
                    on_delta(step, item.type, item.text)
            elif isinstance(item, FinalResponse):
                return item.response
            elif isinstance(item, StreamError):
                if on_delta is not None:
                    on_delta(step, "discard", "")
                response = await self.router.complete(request)
                response.metadata.attempts = [*item.attempts, *response.metadata.attempts]
                return response
        raise AssertionError("the router's stream ended without a final response")

    @staticmethod
    def _account(result: AgentResult, response: ModelResponse, step: int) -> None:
        meta = response.metadata
        result.prompt_tokens += response.usage.prompt_tokens
        result.completion_tokens += response.usage.completion_tokens
        result.cost += response.cost
        result.last_response = response
        result.model_calls.append({
            "step": step, "endpoint": meta.endpoint, "provider": meta.provider, "model": meta.model_id,
            "latency_s": round(meta.latency_s, 6), "ttft_s": meta.ttft_s,
            "usage": {"prompt_tokens": response.usage.prompt_tokens,
                      "completion_tokens": response.usage.completion_tokens},
            "cost_usd": response.cost, "attempts": len(meta.attempts),
            "fallbacks": [a.endpoint for a in meta.attempts if not a.ok],
        })  # fmt: skip

    async def _run_calls(
        self,
        calls: list[ModelToolCall],
        toolset: Toolset,
        emit: Emit,
        approvals: Approvals,
        policy: TaskPolicy,
    ) -> list[ToolCall]:
        records: list[ToolCall | None] = [None] * len(calls)
        read_only_batch: list[int] = []

        async def run_one(index: int) -> None:
            records[index] = await self._run_call(calls[index], toolset, emit, approvals, policy)

        async def flush() -> None:
            await asyncio.gather(*(run_one(i) for i in read_only_batch))
            read_only_batch.clear()

        for index, call in enumerate(calls):
            tool = toolset.get(call.name)
            if (
                tool is not None
                and tool.read_only
                and not self._needs_approval(call.name, tool.destructive, policy)
            ):
                read_only_batch.append(index)
                continue
            await flush()  # keep the model's order around calls that change things
            await run_one(index)
        await flush()
        return [record for record in records if record is not None]

    @staticmethod
    def _needs_approval(name: str, destructive: bool, policy: TaskPolicy) -> str | None:
        if name in policy.pre_approved:
            return None
        if destructive:
            return "the tool is marked destructive"
        if policy.allowed_tools is not None and name not in policy.allowed_tools:
            return "the tool is outside this task's allow-list"
        return None

    async def _run_call(
        self,
        call: ModelToolCall,
        toolset: Toolset,
        emit: Emit,
        approvals: Approvals,
        policy: TaskPolicy,
    ) -> ToolCall:
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            record = ToolCall(
                id=call.id,
                name=call.name,
                arguments={},
                error=f"arguments are not valid JSON: {exc}",
            )
            await emit("tool.result", _summary(record))
            return record
        tool = toolset.get(call.name)
        reason = (
            self._needs_approval(call.name, tool.destructive, policy) if tool is not None else None
        )
        if reason is not None:
            approved, note = await approvals.ask(call, reason)
            if not approved:
                record = ToolCall(id=call.id, name=call.name, arguments=arguments,
                                  error="a person rejected this call" + (f": {note}" if note else "") +
                                  "; do not try it again")  # fmt: skip
                await emit("tool.result", _summary(record))
                return record
        await emit("tool.call", {"id": call.id, "name": call.name, "arguments": arguments})
        started = time.perf_counter()
        record = await toolset.call(call.name, arguments, call_id=call.id)
        record.duration_s = round(time.perf_counter() - started, 6)
        await emit("tool.result", _summary(record))
        return record


def _summary(record: ToolCall) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "ok": record.ok, "error": record.error,
            "duration_s": record.duration_s, "output": record.output[:2000]}  # fmt: skip
