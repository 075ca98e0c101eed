"""Cost of a call: the endpoint's own prices, else the cloud vendor's table; self-hosted is free."""

from __future__ import annotations

from anvyl.orchestrator.llm.config import ModelEndpoint
from anvyl.orchestrator.llm.types import Usage
from anvyl.orchestrator.llm.vendors import cloud_vendor_at, price_of


def call_cost(endpoint: ModelEndpoint, model_id: str, usage: Usage) -> float:
    if endpoint.price_input_per_mtok is not None or endpoint.price_output_per_mtok is not None:
        prices = (endpoint.price_input_per_mtok or 0.0, endpoint.price_output_per_mtok or 0.0)
    else:
        vendor = cloud_vendor_at(endpoint.base_url)
        found = price_of(vendor, model_id) if vendor is not None else None
        if found is None:
            return 0.0
        prices = found
    return (usage.prompt_tokens * prices[0] + usage.completion_tokens * prices[1]) / 1_000_000
