"""`GET /agents/NAME?check=true`: does the agent's provider answer? One request, with a timeout."""

from __future__ import annotations

import importlib.util
import time

import httpx

from anvyl.orchestrator.agents.models import ProviderHealth
from anvyl.orchestrator.llm import ModelEndpoint

PROBE_TIMEOUT_S = 5.0


async def probe(endpoint: ModelEndpoint, timeout_s: float = PROBE_TIMEOUT_S) -> ProviderHealth:
    """List the provider's models (the cheapest authenticated call both API shapes have)."""
    started = time.perf_counter()
    if endpoint.api_shape == "local_runner":
        found = importlib.util.find_spec(f"{endpoint.runner}_lm") is not None or (
            importlib.util.find_spec(endpoint.runner or "") is not None)  # fmt: skip
        detail = (f"in-process runner {endpoint.runner!r} is installed; it loads {endpoint.model} at "
                  "the first act" if found else f"in-process runner {endpoint.runner!r} is not "
                  "installed here (install the mlx extra)")  # fmt: skip
        return ProviderHealth(ok=found, detail=detail, latency_ms=_ms(started))
    key = endpoint.api_key.get_secret_value() if endpoint.api_key else None
    base = (endpoint.base_url or "").rstrip("/")
    if endpoint.api_shape == "anthropic_messages":
        url = f"{base}/v1/models"
        headers = {"anthropic-version": "2023-06-01"} | ({"x-api-key": key} if key else {})
    else:
        url = f"{base}/models"
        headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return ProviderHealth(ok=False, detail=f"{url}: {type(exc).__name__}: {exc}"[:500],
                              latency_ms=_ms(started))  # fmt: skip
    ok = response.status_code == 200
    detail = f"{url} answered HTTP {response.status_code}" + ("" if ok else (
        ": check api_key" if response.status_code in (401, 403) else ""))  # fmt: skip
    return ProviderHealth(ok=ok, detail=detail, latency_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
