from __future__ import annotations

from typing import Any

from anvyl.orchestrator.llm import ChatMessage, ModelEndpoint, ModelRequest, ModelRouter


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
