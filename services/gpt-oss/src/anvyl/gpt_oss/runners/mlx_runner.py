"""mlx-lm runner: Apple silicon (Metal) or any CPU through ``mlx[cpu]``.

The model is loaded lazily, once, under an asyncio lock shared by concurrent callers. All MLX work
runs on one dedicated thread: MLX streams are bound to the thread that created them, and one
generation at a time is what a single loaded model can serve anyway.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from anvyl.gpt_oss.runners.base import (
    GenerationChunk,
    GenerationRequest,
    LocalRunner,
    RunnerUnavailable,
)

_DONE = object()


class MlxRunner(LocalRunner):
    def __init__(self, model: str, **options: Any) -> None:
        super().__init__(model, **options)
        self._model: Any = None
        self._tokenizer: Any = None
        self._load_lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx")
        return self._executor

    async def load(self) -> None:
        async with self._load_lock:
            if self._model is not None:
                return
            try:
                import mlx_lm
            except ImportError as exc:
                raise RunnerUnavailable(
                    "the mlx runner needs mlx-lm: install anvyl-gpt-oss[mlx]"
                ) from exc
            loop = asyncio.get_running_loop()
            loaded = await loop.run_in_executor(self._thread(), mlx_lm.load, self.model)
            self._model, self._tokenizer = loaded[0], loaded[1]

    def _prompt(self, request: GenerationRequest) -> list[int]:
        kwargs: dict[str, Any] = {"add_generation_prompt": True}
        if request.tools:
            kwargs["tools"] = list(request.tools)
        prompt = self._tokenizer.apply_chat_template(list(request.messages), **kwargs)
        return list(prompt)

    def _chunks(
        self, request: GenerationRequest, cancel: threading.Event
    ) -> Iterator[GenerationChunk]:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        prompt = self._prompt(request)
        sampler = make_sampler(temp=request.temperature)
        for response in stream_generate(
            self._model, self._tokenizer, prompt, max_tokens=request.max_tokens, sampler=sampler
        ):
            yield GenerationChunk(
                text=response.text,
                finish_reason=response.finish_reason,
                prompt_tokens=response.prompt_tokens,
                completion_tokens=response.generation_tokens,
            )
            if cancel.is_set():
                return

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        await self.load()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def produce() -> None:
            try:
                for chunk in self._chunks(request, cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self._thread(), produce)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()  # a consumer that stops early ends the generation thread promptly
            await asyncio.shield(future)

    async def close(self) -> None:
        async with self._load_lock:
            self._model = None
            self._tokenizer = None
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
