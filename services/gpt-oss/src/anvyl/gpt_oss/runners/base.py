"""The interface every in-process model runner implements."""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GenerationRequest:
    """What a runner needs: chat messages (OpenAI shape) rendered by the model's chat template."""

    messages: Sequence[dict[str, Any]]
    tools: Sequence[dict[str, Any]] | None = None
    max_tokens: int = 512
    temperature: float = 0.0


@dataclass(frozen=True)
class GenerationChunk:
    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class GenerationResult:
    """Raw model text (may hold harmony markers) and token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    model_id: str


class RunnerUnavailable(RuntimeError):
    """The runner's engine is not installed or cannot run on this machine."""


class LocalRunner(abc.ABC):
    """An in-process model. Implementations load lazily and are safe for concurrent callers."""

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.options = options

    @abc.abstractmethod
    async def load(self) -> None:
        """Load weights once; later and concurrent calls return immediately."""

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole answer: the stream, gathered (its last chunk carries the counts)."""
        parts: list[str] = []
        last = GenerationChunk(text="")
        async for chunk in self.stream(request):
            parts.append(chunk.text)
            last = chunk
        return GenerationResult(
            text="".join(parts),
            finish_reason=last.finish_reason or "stop",
            prompt_tokens=last.prompt_tokens,
            completion_tokens=last.completion_tokens,
            model_id=self.model,
        )

    @abc.abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Free the model; a later call loads it again."""
