"""What the router needs from an API-shape module (:class:`Model`), and the pieces they share."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

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


TimeoutT = TypeVar("TimeoutT")

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


def short_message(message: str) -> str:
    return message if len(message) < 300 else message[:300] + "..."


@dataclass(frozen=True)
class SdkErrors:
    """The exception classes of one vendor SDK. The OpenAI and Anthropic SDKs come from the same
    generator: their errors have the same family tree and the same attributes."""

    status: type[Exception]  # has status_code, message, response.headers
    timeout: type[Exception]
    connection: type[Exception]
    transport: tuple[type[Exception], ...]  # raised mid-stream by the HTTP transport
    base: type[Exception]

    def translate(self, exc: Exception) -> EndpointError:
        if isinstance(exc, EndpointError):
            return exc
        if isinstance(exc, self.status):
            failed: Any = exc
            return status_error(
                failed.status_code, short_message(str(failed.message)), failed.response.headers
            )
        if isinstance(exc, self.timeout):
            return EndpointError(f"timeout: {exc}", retryable=True, kind="timeout")
        if isinstance(exc, self.connection):
            cause = exc.__cause__ or exc
            return EndpointError(f"connection failed: {cause}", retryable=True, kind="connection")
        if isinstance(exc, self.transport):
            return EndpointError(f"transport error: {exc!r}", retryable=True, kind="connection")
        if isinstance(exc, self.base):
            return EndpointError(f"{type(exc).__name__}: {exc}", retryable=False, kind="protocol")
        raise exc


def endpoint_timeout(
    timeout: Callable[..., TimeoutT], endpoint: ModelEndpoint, read: float
) -> TimeoutT:
    """An SDK timeout (its own httpx ``Timeout`` class) with the endpoint's connect limit."""
    connect = endpoint.connect_timeout
    return timeout(connect=connect, read=read, write=connect, pool=connect)


def client_timeout(timeout: Callable[..., TimeoutT], endpoint: ModelEndpoint) -> TimeoutT:
    """The SDK client's default: a read waits at most for the first token or the next chunk."""
    return endpoint_timeout(
        timeout, endpoint, max(endpoint.first_token_timeout, endpoint.chunk_timeout)
    )


class SdkModel:
    """What the API shapes built on a vendor SDK share: error translation, probe and close."""

    errors: SdkErrors
    _client: Any  # the SDK's async client

    async def probe(self, timeout_s: float) -> None:
        try:
            await self._client.models.list(timeout=timeout_s)
        except Exception as exc:
            raise self.errors.translate(exc) from exc

    async def aclose(self) -> None:
        await self._client.close()
