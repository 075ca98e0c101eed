"""Request, response and stream-event shapes shared by every vendor and API shape."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class FunctionCall(BaseModel):
    name: str
    arguments: str = "{}"  # a JSON object as a string, as on the OpenAI wire


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def arguments(self) -> str:
        return self.function.arguments


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class FunctionDefinition(BaseModel):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolDefinition(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ModelRequest(BaseModel):
    messages: list[ChatMessage]
    tools: list[ToolDefinition] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    response_schema: dict[str, Any] | None = None
    stream: bool = False


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Attempt(BaseModel):
    endpoint: str
    provider: str
    model_id: str
    ok: bool
    error: str | None = None
    error_type: str | None = None
    status_code: int | None = None
    latency_s: float = 0.0
    skipped: bool = False  # the circuit was open: no call was made


class ResponseMetadata(BaseModel):
    endpoint: str
    provider: str
    model_id: str
    latency_s: float
    ttft_s: float | None = None
    attempts: list[Attempt] = Field(default_factory=list)


class ModelResponse(BaseModel):
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    reasoning: str = ""
    finish_reason: str = "stop"
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    metadata: ResponseMetadata
    parsed: Any = None  # the validated JSON value when the request had a response_schema


class ContentDelta(BaseModel):
    type: Literal["content"] = "content"
    text: str


class ReasoningDelta(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    text: str


class ToolCallDelta(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class FinalResponse(BaseModel):
    type: Literal["final"] = "final"
    response: ModelResponse


class StreamError(BaseModel):
    type: Literal["error"] = "error"
    message: str
    endpoint: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)


StreamEvent = ContentDelta | ReasoningDelta | ToolCallDelta | FinalResponse | StreamError
