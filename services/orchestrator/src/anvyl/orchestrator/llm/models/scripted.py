"""An in-process model for unit tests: answers from a script, no network, no server.

The same :class:`~anvyl.orchestrator.llm.testing.ScriptedReply` that drives the wire-level
``ScriptedLLMServer`` drives this model: text, reasoning, tool calls, streamed pieces of
``chunk_size`` characters, an error status (raised as the same ``EndpointError`` an HTTP client
would get), stalls before the first piece or mid-stream. Give it to the router with
``ModelRouter.over(ScriptedModel(endpoint, [...]), ...)`` to test fallback, streaming and
normalisation in milliseconds; use the wire-level server to test an SDK and its protocol.

    model = ScriptedModel(endpoint, [ScriptedReply.error(500), ScriptedReply(content="hi")])
    model = ScriptedModel(endpoint, lambda request: ScriptedReply(content=str(len(request.messages))))
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterable

from anvyl.gpt_oss.harmony import HarmonyStreamParser
from anvyl.orchestrator.llm.config import ModelEndpoint
from anvyl.orchestrator.llm.models.base import (
    ModelResult,
    ModelStreamItem,
    StreamAccumulator,
    StreamDone,
    status_error,
)
from anvyl.orchestrator.llm.testing import (
    ScriptedReplies,
    ScriptedReply,
    interleaved_arguments,
    split_pieces,
)
from anvyl.orchestrator.llm.types import ModelRequest, Usage

ModelScript = Callable[[ModelRequest], ScriptedReply]


class ScriptedModel(ScriptedReplies[ModelRequest]):
    """``requests``: what the router sent, after its own changes."""

    def __init__(
        self,
        endpoint: ModelEndpoint,
        replies: Iterable[ScriptedReply] | ModelScript | None = None,
        *,
        default: ScriptedReply | None = None,
    ) -> None:
        super().__init__(replies, default=default)
        self.endpoint = endpoint
        self.closed = False

    async def complete(self, request: ModelRequest) -> ModelResult:
        # Built from the same pieces as a stream, so both paths normalise alike.
        done: StreamDone | None = None
        async for item in self._answer(request, stall_mid_stream=False):
            if isinstance(item, StreamDone):
                done = item
        assert done is not None
        return done.result

    def stream(self, request: ModelRequest) -> AsyncGenerator[ModelStreamItem, None]:
        return self._answer(request, stall_mid_stream=True)

    async def _answer(
        self, request: ModelRequest, *, stall_mid_stream: bool
    ) -> AsyncGenerator[ModelStreamItem, None]:
        reply = self._next_reply(request)
        if reply.status != 200:
            raise status_error(reply.status, reply.error_message, reply.headers)
        if reply.stall_before_first_token:
            await asyncio.sleep(reply.stall_before_first_token)
        accumulator = StreamAccumulator(reply.model)
        harmony = HarmonyStreamParser() if self.endpoint.harmony else None
        for count, (kind, key, text) in enumerate(_pieces(reply), start=1):
            if kind == "reasoning":
                yield accumulator.reasoning(text)
            elif kind == "content" and harmony is not None:
                for event in accumulator.harmony(harmony.feed(text)):
                    yield event
            elif kind == "content":
                yield accumulator.content(text)
            elif kind == "tool_call":
                call = reply.tool_calls[key]
                yield accumulator.tools.add(("scripted", key), call.id, call.name, None)
            else:
                yield accumulator.tools.add(("scripted", key), None, None, text)
            if stall_mid_stream and count == reply.stall_after_chunks:
                await asyncio.sleep(reply.stall_seconds)
        if harmony is not None:
            for event in accumulator.harmony(harmony.finish()):
                yield event
        accumulator.result.usage = Usage(
            prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens
        )
        if reply.finish_reason:
            accumulator.result.finish_reason = reply.finish_reason
        yield accumulator.done()

    async def probe(self, timeout_s: float) -> None:
        """Always reachable: there is nothing to reach."""

    async def aclose(self) -> None:
        self.closed = True


def _pieces(reply: ScriptedReply) -> list[tuple[str, int, str]]:
    """(kind, tool index, text) in the order a server streams them: reasoning, content, then each
    tool call's header and the argument pieces of all calls interleaved."""
    out = [("reasoning", 0, p) for p in split_pieces(reply.reasoning, reply.chunk_size)]
    out += [("content", 0, p) for p in split_pieces(reply.content, reply.chunk_size)]
    out += [("tool_call", i, "") for i in range(len(reply.tool_calls))]
    out += [("arguments", i, p) for i, p in interleaved_arguments(reply)]
    return out
