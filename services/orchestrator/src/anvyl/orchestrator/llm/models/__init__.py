"""API shapes: one module per wire protocol; the vendor table (``vendors.py``) says where and how.

``make_model`` builds the client for an endpoint from its vendor's ``api_shape``. The SDKs are
imported on first use, so an orchestrator without cloud models never loads them.
"""

from __future__ import annotations

from anvyl.orchestrator.llm.config import ModelEndpoint
from anvyl.orchestrator.llm.models.base import Model, ModelResult, ModelStreamItem, StreamDone


def make_model(endpoint: ModelEndpoint) -> Model:
    shape = endpoint.api_shape
    if shape == "anthropic_messages":
        from anvyl.orchestrator.llm.models.anthropic_messages import AnthropicMessagesModel

        return AnthropicMessagesModel(endpoint)
    if shape == "local_runner":
        from anvyl.orchestrator.llm.models.local_runner import LocalRunnerModel

        return LocalRunnerModel(endpoint)
    from anvyl.orchestrator.llm.models.openai_chat import OpenAIChatModel

    return OpenAIChatModel(endpoint)


__all__ = ["Model", "ModelResult", "ModelStreamItem", "StreamDone", "make_model"]
