"""Interpretation: a model answers with ClusterSpec JSON (one repair try), else the parser.

The model is reached through an ``Ask``: a function from chat messages and the JSON schema to the
answer's text. The orchestrator's CLI passes one over Anvyl's model router; ``openai_ask`` speaks
to any OpenAI-compatible server (Ollama's ``/v1``) directly. The result says which produced it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from anvyl.clusters.discovery import HostContext
from anvyl.clusters.intent import check_intent, parse_intent
from anvyl.clusters.spec import ADDONS, ClusterSpec, describe_errors

Messages = list[dict[str, str]]
Ask = Callable[[Messages, dict[str, Any]], Awaitable[str]]
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)

SYSTEM_PROMPT = """\
You plan Kubernetes clusters on a Proxmox host. Read the user's intent and answer with one JSON
object matching the ClusterSpec schema: control_plane_count (odd: 1, 3 or 5), worker_count, cores
and memory (MiB) per node type, disk_gb, ip_start, cni (flannel unless asked: calico, cilium),
kubernetes_version ("1.31" unless asked), addons (only from: {addons}), a short DNS-label name, and
reasoning: why these settings, and how they fit the host. Size the cluster within the host's free
capacity and scale down (saying so in reasoning) when it does not fit; pick an ip_start whose whole
node range avoids every address in use. Profiles: dev 1+1 nodes 2 cores 2GB; production 1+3 4 cores
8GB with metrics-server and ingress-nginx; ML 1+3 8 cores 16GB; CI/CD 1+2 4 cores 4GB; HA 3+3 4
cores 8GB; minimal 1+0 2 cores 2GB; "N node" means N nodes in all."""


@dataclass
class Interpretation:
    spec: ClusterSpec
    source: str  # "model:<name>" or "parser"
    warnings: list[str] = field(default_factory=list)


def messages_for(intent: str, host: HostContext | None) -> Messages:
    context = host.describe() if host else "The Proxmox host could not be read: use defaults."
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(addons=", ".join(ADDONS))},
        {"role": "user", "content": f"Host: {context}\n\nIntent: {intent}"},
    ]


def spec_from_answer(answer: str) -> tuple[ClusterSpec | None, str]:
    """(spec, "") for a valid answer, else (None, what is wrong) in words for a repair prompt."""
    text = answer.strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"the answer is not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, "the answer is not a JSON object"
    try:
        return ClusterSpec.model_validate(value), ""
    except ValidationError as exc:
        return None, f"the spec is invalid: {describe_errors(exc)}"


async def interpret(
    intent: str, *, host: HostContext | None = None, ask: Ask | None = None, model_name: str = ""
) -> Interpretation:
    """The spec for ``intent``: from the model when ``ask`` is given and answers validly within one
    repair, else from the parser (with a warning saying why). IntentError for unusable intents."""
    text = check_intent(intent)
    warnings: list[str] = []
    if ask is not None:
        messages = messages_for(text, host)
        schema = ClusterSpec.model_json_schema()
        problem = first = ""
        for attempt in range(2):
            try:
                answer = await ask(messages, schema)
            except Exception as exc:  # any model failure falls back to the parser
                problem = f"the model could not be asked ({type(exc).__name__}: {exc})"
                break
            spec, problem = spec_from_answer(answer)
            if spec is not None:
                if attempt:
                    warnings.append(f"the model's first answer was repaired: it said {first}")
                return Interpretation(spec, f"model:{model_name or 'default'}", warnings)
            first = problem
            messages = [
                *messages,
                {"role": "assistant", "content": answer[:8000]},
                {"role": "user", "content": f"{problem}. Reply again with only the JSON object."},
            ]
        warnings.append(f"{problem}; the deterministic parser was used instead")
    return Interpretation(parse_intent(text), "parser", warnings)


def openai_ask(base_url: str, model: str, *, timeout_s: float = 120.0, api_key: str = "") -> Ask:
    """An Ask over an OpenAI-compatible ``/chat/completions`` (e.g. Ollama at OLLAMA_URL + /v1)
    with the schema as structured output."""

    async def ask(messages: Messages, schema: dict[str, Any]) -> str:
        body = {
            "model": model,
            "messages": messages,
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "ClusterSpec", "schema": schema},
            },
        }
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=5.0)) as client:
            response = await client.post(
                base_url.rstrip("/") + "/chat/completions", json=body, headers=headers
            )
            response.raise_for_status()
            return str(response.json()["choices"][0]["message"].get("content") or "")

    return ask


def ollama_base_url(url: str) -> str:
    """OLLAMA_URL (``http://host:11434``) as its OpenAI-compatible base (``.../v1``)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"
