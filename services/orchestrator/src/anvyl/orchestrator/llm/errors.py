"""Errors the router raises or classifies endpoint failures into."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anvyl.orchestrator.llm.types import Attempt


class ModelError(Exception):
    """Base class of model-routing errors."""


class NoModelConfigured(ModelError):
    """No endpoint is configured: the caller falls back to its built-in planner."""


class AllModelsFailed(ModelError):
    def __init__(self, attempts: list[Attempt]) -> None:
        self.attempts = attempts
        summary = "; ".join(
            f"{a.endpoint}: {'circuit open' if a.skipped else a.error}" for a in attempts
        )
        super().__init__(f"every model endpoint failed ({summary})")


class ModelConfigError(ModelError, ValueError):
    """The model configuration is invalid; the message names the field and the file line."""


class EndpointError(ModelError):
    """One call to one endpoint failed; ``retryable``: the same endpoint may be tried again."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
        kind: str = "error",
        counts_against_circuit: bool = True,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after
        self.kind = kind
        self.counts_against_circuit = counts_against_circuit


class FirstTokenTimeout(EndpointError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"no first token within {seconds:g}s", retryable=True, kind="first_token_timeout"
        )


class ChunkTimeout(EndpointError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"stream stalled for {seconds:g}s", retryable=True, kind="chunk_timeout")


class TotalTimeout(EndpointError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"call exceeded {seconds:g}s", retryable=True, kind="total_timeout")


class SchemaValidationFailed(ModelError):
    def __init__(self, message: str, content: str) -> None:
        super().__init__(message)
        self.content = content
