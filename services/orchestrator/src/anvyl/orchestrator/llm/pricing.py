"""Cost of a call from a price table (USD per million tokens); self-hosted costs nothing."""

from __future__ import annotations

from anvyl.orchestrator.llm.config import ModelEndpoint
from anvyl.orchestrator.llm.types import Usage

# (input, output) USD per million tokens, matched by model-id prefix, longest first.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "grok-3-mini": (0.30, 0.50),
    "grok-3": (3.00, 15.00),
    "llama-3.1-8b-instant": (0.05, 0.08),
    "llama-3.3-70b-versatile": (0.59, 0.79),
    "openai/gpt-oss-20b": (0.10, 0.50),  # hosted on Groq; self-hosted is free
    "openai/gpt-oss-120b": (0.15, 0.75),
}


def call_cost(endpoint: ModelEndpoint, model_id: str, usage: Usage) -> float:
    if endpoint.price_input_per_mtok is not None or endpoint.price_output_per_mtok is not None:
        prices = (endpoint.price_input_per_mtok or 0.0, endpoint.price_output_per_mtok or 0.0)
    elif not endpoint.is_cloud:
        return 0.0
    else:
        match = max((p for p in PRICES_PER_MTOK if model_id.startswith(p)), key=len, default=None)
        if match is None:
            return 0.0
        prices = PRICES_PER_MTOK[match]
    return (usage.prompt_tokens * prices[0] + usage.completion_tokens * prices[1]) / 1_000_000
