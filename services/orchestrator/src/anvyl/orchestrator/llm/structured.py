"""Structured output: ask for JSON matching a schema and validate the answer."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from anvyl.orchestrator.llm.types import ChatMessage, ModelRequest

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def with_schema_instruction(request: ModelRequest) -> ModelRequest:
    """Say the schema in the prompt too: not every server honours ``response_format``."""
    if request.response_schema is None:
        return request
    instruction = ChatMessage(
        role="system",
        content="Answer with a single JSON value, no prose, that matches this JSON schema:\n"
        + json.dumps(request.response_schema),
    )
    return request.model_copy(update={"messages": [instruction, *request.messages]})


def validate_answer(content: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """Return (value, None) when ``content`` is valid JSON for ``schema``, else (None, why)."""
    text = content.strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"the answer is not valid JSON: {exc}"
    validator_class = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_class(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        return None, f"the answer does not match the schema at {where}: {first.message}"
    return value, None


def repair_request(request: ModelRequest, answer: str, problem: str) -> ModelRequest:
    """The same request plus the invalid answer and what is wrong with it, for one retry."""
    follow_up = [
        ChatMessage(role="assistant", content=answer),
        ChatMessage(
            role="user",
            content=f"{problem}. Reply again with only JSON that matches the schema.",
        ),
    ]
    return request.model_copy(update={"messages": [*request.messages, *follow_up]})
