"""Runner registry and the real mlx runner on a tiny model; the vLLM runner without vLLM."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from anvyl.gpt_oss.runners import (
    GenerationChunk,
    GenerationRequest,
    GenerationResult,
    LocalRunner,
    RunnerUnavailable,
    get_runner,
    register_runner,
    registered_runners,
)
from anvyl.gpt_oss.runners.mlx_runner import MlxRunner

HELLO = GenerationRequest(messages=[{"role": "user", "content": "hello"}], max_tokens=6)


class EchoRunner(LocalRunner):
    """A trivial engine, to show third-party runners plug into the registry."""

    async def load(self) -> None:
        return None

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        text = str(request.messages[-1]["content"])
        return GenerationResult(text, "stop", 1, 1, self.model)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        yield GenerationChunk(str(request.messages[-1]["content"]), "stop", 1, 1)

    async def close(self) -> None:
        return None


def test_registry_registers_and_resolves_runners() -> None:
    register_runner("echo", EchoRunner)
    assert get_runner("echo") is EchoRunner
    assert {"mlx", "vllm", "echo"} <= set(registered_runners())
    assert get_runner("mlx") is MlxRunner
    with pytest.raises(KeyError, match="unknown runner 'nope'"):
        get_runner("nope")
    with pytest.raises(TypeError):
        register_runner("bad", dict)  # type: ignore[arg-type]


async def test_vllm_runner_imports_lazily_and_explains_when_missing() -> None:
    runner_class = get_runner("vllm")
    runner = runner_class("openai/gpt-oss-20b")
    assert importlib.util.find_spec("vllm") is None  # this machine has no CUDA/vLLM
    with pytest.raises(RunnerUnavailable, match="pip install"):
        await runner.load()


async def test_mlx_runner_loads_once_for_concurrent_callers(tiny_model: Path) -> None:
    runner = MlxRunner(str(tiny_model))
    try:
        assert not runner.loaded
        results = await asyncio.gather(*(runner.generate(HELLO) for _ in range(4)))
        assert runner.loaded
        assert len({r.text for r in results}) == 1  # greedy decoding, same prompt, same model
        assert all(r.completion_tokens == 6 and r.finish_reason == "length" for r in results)
        assert results[0].prompt_tokens > 0 and results[0].text
        chunks = [chunk async for chunk in runner.stream(HELLO)]
        assert "".join(c.text for c in chunks) == results[0].text
        assert chunks[-1].finish_reason == "length"
    finally:
        await runner.close()
    assert not runner.loaded


async def test_mlx_runner_stream_can_stop_early(tiny_model: Path) -> None:
    runner = MlxRunner(str(tiny_model))
    try:
        long_request = GenerationRequest(
            messages=[{"role": "user", "content": "hi"}], max_tokens=400
        )
        stream = runner.stream(long_request)
        first = await anext(stream)
        await stream.aclose()  # the generation thread sees the cancel flag and stops
        assert first.completion_tokens == 1
        after = await runner.generate(HELLO)  # the single MLX thread is free again
        assert after.completion_tokens == 6
    finally:
        await runner.close()
