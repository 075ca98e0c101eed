"""A real (tiny, random-weight) mlx model: over HTTP via ``mlx_lm server`` and in-process."""

from __future__ import annotations

from pathlib import Path

from llm_helpers import ask, endpoint, router

from anvyl.gpt_oss.runners import get_runner
from anvyl.orchestrator.llm import ContentDelta, FinalResponse, ModelEndpoint
from anvyl.orchestrator.llm.models.local_runner import (
    LocalRunnerModel,
    close_shared_runners,
    generation_request,
)
from anvyl.orchestrator.llm.testing import refused_port


async def test_router_to_mlx_lm_server_over_http(mlx_server_url: str, tiny_model_dir: Path) -> None:
    dead = endpoint("gpt-oss", f"http://127.0.0.1:{refused_port()}/v1", retries=0)
    mlx = endpoint("mlx", mlx_server_url, model=str(tiny_model_dir), first_token_timeout=60)
    async with router(dead, mlx) as r:
        response = await r.complete(ask("list the files", max_tokens=8, temperature=0))
        events = [event async for event in r.stream(ask("hello world", max_tokens=6, stream=True))]
    assert response.metadata.endpoint == "mlx"
    assert response.usage.completion_tokens > 0
    assert response.usage.prompt_tokens > 0
    assert response.content  # random weights, but real generated text
    assert response.cost == 0.0
    final = events[-1]
    assert isinstance(final, FinalResponse)
    streamed = "".join(e.text for e in events if isinstance(e, ContentDelta))
    assert streamed == final.response.content and streamed
    assert final.response.metadata.ttft_s is not None


async def test_local_provider_runs_the_mlx_runner_in_process(tiny_model_dir: Path) -> None:
    local = ModelEndpoint(name="tiny", provider="local", runner="mlx", model=str(tiny_model_dir))
    try:
        async with router(local) as r:
            response = await r.complete(ask("show the git status", max_tokens=10))
            events = [event async for event in r.stream(ask("hello", max_tokens=5, stream=True))]
            provider = r.model(local)
            assert isinstance(provider, LocalRunnerModel)
            assert isinstance(provider.runner, get_runner("mlx"))
        assert response.metadata.provider == "local"
        assert response.usage.completion_tokens == 10
        assert response.finish_reason == "length"
        assert response.content
        final = events[-1]
        assert isinstance(final, FinalResponse)
        assert final.response.usage.completion_tokens == 5
    finally:
        await close_shared_runners()


def test_the_runner_gets_the_requests_temperature_and_output_budget() -> None:
    sent = generation_request(ask("hi", temperature=0.3, max_tokens=7))
    assert (sent.temperature, sent.max_tokens) == (0.3, 7)
