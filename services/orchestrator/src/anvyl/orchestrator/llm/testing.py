"""Scripted wire-protocol model servers for tests: no network, real HTTP, real SDKs.

``ScriptedLLMServer`` is a raw ASGI app served by uvicorn on a free loopback port in a background
thread. It speaks OpenAI chat completions (JSON and SSE, tool calls) on ``/v1/chat/completions`` and
Anthropic Messages (JSON and SSE events) on ``/v1/messages``. Each request takes the next
:class:`ScriptedReply` from the queue (or calls the script function); a reply can be an error status
(500, 429 with Retry-After), stall before the first token or in the middle of the stream.

    with ScriptedLLMServer([ScriptedReply(status=500), ScriptedReply(content="hi")]) as server:
        endpoint = ModelEndpoint(name="x", provider="openai", base_url=server.openai_url, model="m")
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
RequestT = TypeVar("RequestT")


@dataclass
class ScriptedToolCall:
    name: str
    arguments: str  # JSON text
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:12])


@dataclass
class ScriptedReply:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ScriptedToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "scripted failure"
    model: str = "scripted-model"
    prompt_tokens: int = 11
    completion_tokens: int = 7
    chunk_size: int = 4  # characters per streamed content/argument piece
    stall_before_first_token: float = 0.0  # seconds; streaming: after headers and the role chunk
    stall_after_chunks: int | None = None  # streaming: stall after this many content chunks
    stall_seconds: float = 0.0

    @classmethod
    def error(
        cls, status: int, retry_after: float | None = None, message: str = ""
    ) -> ScriptedReply:
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        return cls(status=status, headers=headers, error_message=message or f"scripted {status}")


@dataclass
class RecordedRequest:
    api: str  # "openai" or "anthropic"
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float


Script = Callable[[RecordedRequest], ScriptedReply]


def split_pieces(text: str, size: int) -> list[str]:
    """``text`` in pieces of ``size`` characters, as a server streams it."""
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def interleaved_arguments(reply: ScriptedReply) -> list[tuple[int, str]]:
    """(tool call index, piece) of every call's arguments, the calls' pieces round-robin."""
    pieces = [split_pieces(call.arguments, reply.chunk_size) for call in reply.tool_calls]
    return [
        (index, piece)
        for round_pieces in itertools.zip_longest(*pieces)
        for index, piece in enumerate(round_pieces)
        if piece is not None
    ]


async def read_body(receive: Receive) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (
        head + "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"
    ).encode()


class ScriptedReplies(Generic[RequestT]):
    """Where a scripted model's replies come from: the script function if there is one, else the
    queue, else ``default``, else a 500 saying the script ran out. ``requests`` records each ask."""

    def __init__(
        self,
        replies: Iterable[ScriptedReply] | Callable[[RequestT], ScriptedReply] | None = None,
        *,
        default: ScriptedReply | None = None,
    ) -> None:
        self._script = replies if callable(replies) else None
        self._queue: deque[ScriptedReply] = deque(
            [] if replies is None or callable(replies) else replies
        )
        self.default = default
        self.requests: list[RequestT] = []

    def push(self, *replies: ScriptedReply) -> None:
        self._queue.extend(replies)

    def _next_reply(self, request: RequestT) -> ScriptedReply:
        self.requests.append(request)
        if self._script is not None:
            return self._script(request)
        if self._queue:
            return self._queue.popleft()
        if self.default is not None:
            return self.default
        return ScriptedReply.error(500, message="the test script has no reply left")


class ScriptedLLMServer(ScriptedReplies[RecordedRequest]):
    def __init__(
        self,
        replies: Iterable[ScriptedReply] | Script | None = None,
        *,
        default: ScriptedReply | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(replies, default=default)
        self.host = host
        self.port = 0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ---------------------------------------------------------------------------------

    def push(self, *replies: ScriptedReply) -> None:
        with self._lock:  # the test's thread pushes while the server's thread takes
            super().push(*replies)

    def _next_reply(self, request: RecordedRequest) -> ScriptedReply:
        with self._lock:
            return super()._next_reply(request)

    @property
    def openai_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> ScriptedLLMServer:
        config = uvicorn.Config(
            self,
            host=self.host,
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="scripted-llm", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the scripted model server did not start")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                self._server.force_exit = True  # type: ignore[union-attr]
                self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- ASGI --------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if scope["method"] == "GET" and path.endswith("/models"):
            await _json(
                send,
                200,
                {
                    "object": "list",
                    "data": [{"id": "scripted-model", "object": "model", "type": "model"}],
                    "has_more": False,
                },
            )
            return
        body = await read_body(receive)
        api = "anthropic" if path.endswith("/messages") else "openai"
        if not path.endswith(("/chat/completions", "/messages")):
            await _json(send, 404, {"error": {"message": f"no route {path}"}})
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        request = RecordedRequest(api, path, headers, json.loads(body or b"{}"), time.monotonic())
        reply = self._next_reply(request)
        if reply.status != 200:
            if api == "anthropic":
                error = {
                    "type": "error",
                    "error": {"type": "api_error", "message": reply.error_message},
                }
            else:
                error = {"error": {"message": reply.error_message, "type": "server_error"}}
            await _json(send, reply.status, error, reply.headers)
            return
        stream = bool(request.body.get("stream"))
        if not stream:
            if reply.stall_before_first_token:
                await asyncio.sleep(reply.stall_before_first_token)
            payload = _openai_json(reply) if api == "openai" else _anthropic_json(reply)
            await _json(send, 200, payload, reply.headers)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        events = _openai_sse(reply, request.body) if api == "openai" else _anthropic_sse(reply)
        content_chunks = 0
        for index, (event, counts_as_content) in enumerate(events):
            if index == 1 and reply.stall_before_first_token:
                await asyncio.sleep(reply.stall_before_first_token)
            await send({"type": "http.response.body", "body": event, "more_body": True})
            content_chunks += counts_as_content
            if counts_as_content and content_chunks == reply.stall_after_chunks:
                await asyncio.sleep(reply.stall_seconds)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _json(
    send: Send, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(payload).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _finish_reason(reply: ScriptedReply, anthropic: bool) -> str:
    if reply.finish_reason:
        return reply.finish_reason
    if anthropic:
        return "tool_use" if reply.tool_calls else "end_turn"
    return "tool_calls" if reply.tool_calls else "stop"


def _openai_json(reply: ScriptedReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.tool_calls
        ]
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(reply, anthropic=False),
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def _openai_sse(reply: ScriptedReply, body: dict[str, Any]) -> list[tuple[bytes, bool]]:
    """SSE frames and whether each carries model output (for the mid-stream stall)."""
    base = {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": reply.model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    frames = [(chunk({"role": "assistant", "content": ""}), False)]
    frames += [
        (chunk({"reasoning_content": p}), True)
        for p in split_pieces(reply.reasoning, reply.chunk_size)
    ]
    frames += [(chunk({"content": p}), True) for p in split_pieces(reply.content, reply.chunk_size)]
    # Tool calls: a header delta per call, then argument pieces interleaved round-robin.
    for index, call in enumerate(reply.tool_calls):
        head = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        frames.append((chunk({"tool_calls": [head]}), True))
    for index, piece in interleaved_arguments(reply):
        delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
        frames.append((chunk(delta), True))
    frames.append((chunk({}, _finish_reason(reply, anthropic=False)), False))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
        frames.append((_sse({**base, "choices": [], "usage": usage}), False))
    frames.append((_sse("[DONE]"), False))
    return frames


def _anthropic_blocks(reply: ScriptedReply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.reasoning:
        blocks.append({"type": "thinking", "thinking": reply.reasoning, "signature": "scripted"})
    if reply.content:
        blocks.append({"type": "text", "text": reply.content})
    for call in reply.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": json.loads(call.arguments or "{}"),
            }
        )
    return blocks


def _anthropic_json(reply: ScriptedReply) -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": _anthropic_blocks(reply),
        "stop_reason": _finish_reason(reply, anthropic=True),
        "stop_sequence": None,
        "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": reply.completion_tokens},
    }


def _anthropic_sse(reply: ScriptedReply) -> list[tuple[bytes, bool]]:
    message = {
        **_anthropic_json(reply),
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": 1},
    }
    frames = [(_sse({"type": "message_start", "message": message}, "message_start"), False)]

    def event(payload: dict[str, Any], counts: bool) -> None:
        frames.append((_sse(payload, payload["type"]), counts))

    start: dict[str, Any]
    for index, block in enumerate(_anthropic_blocks(reply)):
        if block["type"] in ("thinking", "text"):  # the text sits under the block's type
            key = block["type"]
            start, text, delta_type = {"type": key, key: ""}, block[key], f"{key}_delta"
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            text = json.dumps(block["input"])
            delta_type, key = "input_json_delta", "partial_json"
        event({"type": "content_block_start", "index": index, "content_block": start}, True)
        for piece in split_pieces(text, reply.chunk_size):
            event(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": delta_type, key: piece},
                },
                True,
            )
        event({"type": "content_block_stop", "index": index}, False)
    event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": _finish_reason(reply, anthropic=True), "stop_sequence": None},
            "usage": {"output_tokens": reply.completion_tokens},
        },
        False,
    )
    event({"type": "message_stop"}, False)
    return frames


def refused_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def main() -> None:
    """Serve a canned answer until interrupted (used by the benchmark as a separate process)."""
    parser = argparse.ArgumentParser(description="scripted OpenAI/Anthropic-compatible server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--content", default="pong")
    arguments = parser.parse_args()
    server = ScriptedLLMServer(default=ScriptedReply(content=arguments.content, chunk_size=64))
    uvicorn.run(
        server,
        host="127.0.0.1",
        port=arguments.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
