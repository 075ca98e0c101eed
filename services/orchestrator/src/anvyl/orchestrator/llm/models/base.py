"""What the router needs from an API-shape module (:class:`Model`), and the pieces they share."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from anvyl.gpt_oss.harmony import HarmonyEvent, new_tool_call_id
from anvyl.orchestrator.llm.config import ModelEndpoint
from anvyl.orchestrator.llm.errors import EndpointError
from anvyl.orchestrator.llm.types import (
    ContentDelta,
    FunctionCall,
    ModelRequest,
    ReasoningDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)


@dataclass
class ModelResult:
    """One endpoint's answer before the router adds cost and metadata."""

    model_id: str
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)


@dataclass
class StreamDone:
    result: ModelResult


DeltaEvent = ContentDelta | ReasoningDelta | ToolCallDelta
ModelStreamItem = DeltaEvent | StreamDone


class Model(Protocol):
    """One endpoint's client in one API shape; the router adds retries, fallback and cost."""

    endpoint: ModelEndpoint

    async def complete(self, request: ModelRequest) -> ModelResult: ...

    def stream(self, request: ModelRequest) -> AsyncGenerator[ModelStreamItem, None]: ...

    async def probe(self, timeout_s: float) -> None:
        """Cheap reachability check (e.g. list models); raises EndpointError."""

    async def aclose(self) -> None: ...


class ToolCallAssembler:
    """Assembles streamed tool-call deltas by index, several calls interleaved.

    API shapes number calls their own way (OpenAI ``index``, Anthropic content-block index, harmony
    order); each source key gets a stable output index in order of first appearance.
    """

    def __init__(self) -> None:
        self._index: dict[object, int] = {}
        self._ids: list[str] = []
        self._names: list[str] = []
        self._arguments: list[list[str]] = []

    def add(
        self, key: object, call_id: str | None, name: str | None, arguments: str | None
    ) -> ToolCallDelta:
        if key not in self._index:
            self._index[key] = len(self._ids)
            self._ids.append(call_id or new_tool_call_id())
            self._names.append(name or "")
            self._arguments.append([])
            call_id = self._ids[-1]
        index = self._index[key]
        if name and not self._names[index]:
            self._names[index] = name
        if arguments:
            self._arguments[index].append(arguments)
        return ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments or "")

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(
                id=call_id,
                function=FunctionCall(name=name, arguments="".join(parts) or "{}"),
            )
            for call_id, name, parts in zip(self._ids, self._names, self._arguments, strict=True)
        ]


class StreamAccumulator:
    """Builds the final result from the deltas a stream yielded."""

    def __init__(self, model_id: str) -> None:
        self.result = ModelResult(model_id=model_id)
        self.tools = ToolCallAssembler()
        self._content: list[str] = []
        self._reasoning: list[str] = []

    def content(self, text: str) -> ContentDelta:
        self._content.append(text)
        return ContentDelta(text=text)

    def reasoning(self, text: str) -> ReasoningDelta:
        self._reasoning.append(text)
        return ReasoningDelta(text=text)

    def harmony(self, events: list[HarmonyEvent]) -> list[DeltaEvent]:
        out: list[DeltaEvent] = []
        for event in events:
            if event.kind == "content":
                out.append(self.content(event.text))
            elif event.kind == "reasoning":
                out.append(self.reasoning(event.text))
            elif event.kind == "tool_call_start":
                key = ("harmony", event.index)
                out.append(self.tools.add(key, event.tool_call_id, event.name, None))
            else:
                out.append(self.tools.add(("harmony", event.index), None, None, event.text))
        return out

    def done(self) -> StreamDone:
        self.result.content = "".join(self._content)
        self.result.reasoning = "".join(self._reasoning)
        self.result.tool_calls = self.tools.calls()
        if self.result.tool_calls and self.result.finish_reason == "stop":
            self.result.finish_reason = "tool_calls"
        return StreamDone(self.result)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After as seconds (delta-seconds, HTTP date, or the retry-after-ms extension)."""
    if not headers:
        return None
    if (milliseconds := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def status_error(status: int, message: str, headers: Mapping[str, str] | None) -> EndpointError:
    """Classify an HTTP error: 408/409/429/5xx may be retried; the rest go to the next endpoint."""
    retryable = status in (408, 409, 429) or status >= 500
    # A bad request says nothing about the endpoint's health; keep its circuit closed.
    counts = status not in (400, 413, 422)
    return EndpointError(
        f"HTTP {status}: {message}",
        retryable=retryable,
        status_code=status,
        retry_after=retry_after_seconds(headers) if status in (429, 503) else None,
        kind="http_status",
        counts_against_circuit=counts,
    )
