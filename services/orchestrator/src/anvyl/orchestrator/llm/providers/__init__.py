"""One module per API shape; :func:`make_provider` picks the module for an endpoint."""

from __future__ import annotations

from anvyl.orchestrator.llm.config import ModelEndpoint
from anvyl.orchestrator.llm.providers.base import ProviderClient


def make_provider(endpoint: ModelEndpoint) -> ProviderClient:
    if endpoint.api_shape == "anthropic":
        from anvyl.orchestrator.llm.providers.anthropic import AnthropicProvider

        return AnthropicProvider(endpoint)
    if endpoint.api_shape == "local":
        from anvyl.orchestrator.llm.providers.local import LocalProvider

        return LocalProvider(endpoint)
    from anvyl.orchestrator.llm.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(endpoint)
