from __future__ import annotations

from typing import Any

from anvyl.orchestrator.llm import ChatMessage, ModelEndpoint, ModelRequest, ModelRouter
from anvyl.orchestrator.llm.models.scripted import ScriptedModel
from anvyl.orchestrator.llm.testing import ScriptedReply


def endpoint(name: str, base_url: str, provider: str = "openai", **options: Any) -> ModelEndpoint:
    fields: dict[str, Any] = {
        "name": name,
        "provider": provider,
        "base_url": base_url,
        "model": options.pop("model", f"{name}-model"),
    }
    return ModelEndpoint.model_validate({**fields, **options})


def ask(text: str = "hello", **options: Any) -> ModelRequest:
    return ModelRequest(messages=[ChatMessage(role="user", content=text)], **options)


def router(*endpoints: ModelEndpoint, **options: Any) -> ModelRouter:
    return ModelRouter(list(endpoints), **options)


def scripted(
    name: str, *replies: ScriptedReply, provider: str = "openai", **options: Any
) -> ScriptedModel:
    """An endpoint of ``provider`` answered in-process from ``replies``: its URL is never called."""
    default = options.pop("default", None)
    fields = {"name": name, "provider": provider, "model": options.pop("model", f"{name}-model")}
    return ScriptedModel(ModelEndpoint.model_validate(fields | options), replies, default=default)
