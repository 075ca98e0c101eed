"""vLLM runner for CUDA machines: an in-process ``AsyncLLMEngine``.

vllm is imported only when the runner loads, so this module imports everywhere; without vllm the
runner raises :class:`RunnerUnavailable` with the install hint.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from anvyl.gpt_oss.runners.base import (
    GenerationChunk,
    GenerationRequest,
    LocalRunner,
    RunnerUnavailable,
)


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise RunnerUnavailable(
            "the vllm runner needs vLLM on a CUDA machine: pip install 'anvyl-gpt-oss[vllm]'"
        ) from exc
    return vllm


class VllmRunner(LocalRunner):
    def __init__(self, model: str, **options: Any) -> None:
        super().__init__(model, **options)
        self._engine: Any = None
        self._tokenizer: Any = None
        self._load_lock = asyncio.Lock()

    async def load(self) -> None:
        async with self._load_lock:
            if self._engine is not None:
                return
            vllm = import_vllm()
            engine_args = vllm.AsyncEngineArgs(model=self.model, **self.options)
            self._engine = vllm.AsyncLLMEngine.from_engine_args(engine_args)
            self._tokenizer = await self._engine.get_tokenizer()

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        await self.load()
        vllm = import_vllm()
        kwargs: dict[str, Any] = {"add_generation_prompt": True, "tokenize": False}
        if request.tools:
            kwargs["tools"] = list(request.tools)
        prompt = self._tokenizer.apply_chat_template(list(request.messages), **kwargs)
        params = vllm.SamplingParams(
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            skip_special_tokens=False,  # keep harmony markers so the normalizer can split channels
        )
        sent = 0
        async for output in self._engine.generate(prompt, params, uuid.uuid4().hex):
            completion = output.outputs[0]
            text = completion.text[sent:]  # vLLM reports the cumulative text
            sent = len(completion.text)
            yield GenerationChunk(
                text=text,
                finish_reason=completion.finish_reason if output.finished else None,
                prompt_tokens=len(output.prompt_token_ids or []),
                completion_tokens=len(completion.token_ids),
            )

    async def close(self) -> None:
        async with self._load_lock:
            if self._engine is not None and hasattr(self._engine, "shutdown"):
                self._engine.shutdown()
            self._engine = None
