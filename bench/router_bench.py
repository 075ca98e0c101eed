"""Router overhead versus the raw ``openai`` client and LiteLLM, against one fast local server.

    uv run python bench/router_bench.py [--calls 500] [--concurrency 32]

The server is a minimal raw ASGI app under uvicorn in a child process (so it does not share the
client's GIL) returning a canned chat completion (JSON or SSE). Figures are wall-clock latencies
seen by the caller; "overhead" is the difference of medians against the raw client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from anvyl.orchestrator.llm.testing import read_body
from common import free_port

# LiteLLM fetches a price map from GitHub at import; there is no network here.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench-model",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "pong"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}).encode()  # fmt: skip


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    payload = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
               "model": "bench-model",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


STREAM = (
    _chunk({"role": "assistant", "content": ""})
    + _chunk({"content": "po"})
    + _chunk({"content": "ng"})
    + _chunk({}, "stop")
    + b"data: [DONE]\n\n"
)


async def canned_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    streaming = b'"stream":true' in body.replace(b" ", b"")
    payload, content_type = (
        (STREAM, b"text/event-stream") if streaming else (COMPLETION, b"application/json")
    )
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(payload)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


def start_server(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("bench server did not start")


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


Call = Callable[[], Awaitable[Any]]


async def interleaved(variants: Mapping[str, Call], calls: int) -> dict[str, list[float]]:
    """One call of each variant per round, order rotating, so machine noise hits all alike."""
    labels = list(variants)
    for _ in range(min(30, calls)):  # warm-up: connections, lazy imports
        for label in labels:
            await variants[label]()
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for round_number in range(calls):
        shift = round_number % len(labels)
        for label in labels[shift:] + labels[:shift]:
            began, cpu_began = time.perf_counter(), time.process_time()
            await variants[label]()
            samples[label].append(time.perf_counter() - began)
            CPU_SAMPLES.setdefault(label, []).append(time.process_time() - cpu_began)
    return samples


# Client-process CPU seconds per call, by variant label: much less sensitive than wall time to
# other load on the machine, and it is where a client library's overhead lives.
CPU_SAMPLES: dict[str, list[float]] = {}


async def concurrent(call: Call, calls: int, callers: int) -> list[float]:
    samples: list[float] = []
    remaining = [calls]

    async def caller() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            began = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - began)

    await asyncio.gather(*(caller() for _ in range(callers)))
    return samples


async def interleaved_concurrent(
    variants: Mapping[str, Call], calls: int, callers: int, rounds: int = 5
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {label: [] for label in variants}
    for call in variants.values():
        await asyncio.gather(*(call() for _ in range(callers)))  # warm each pool
    for _ in range(rounds):
        for label, call in variants.items():
            samples[label] += await concurrent(call, calls // rounds, callers)
    return samples


async def main(calls: int, callers: int) -> None:
    import litellm
    import openai

    from anvyl.orchestrator.llm import (
        ChatMessage,
        ContentDelta,
        ModelEndpoint,
        ModelRequest,
        ModelRouter,
    )
    from anvyl.orchestrator.llm.testing import refused_port

    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/v1"
    messages = [{"role": "user", "content": "ping"}]
    request = ModelRequest(messages=[ChatMessage(role="user", content="ping")])
    stream_request = request.model_copy(update={"stream": True})
    live = ModelEndpoint(name="live", provider="openai", base_url=url, model="bench-model")
    dead = ModelEndpoint(name="dead", provider="openai", model="bench-model",
                         base_url=f"http://127.0.0.1:{refused_port()}/v1")  # fmt: skip
    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    router = ModelRouter([live])
    # Fallback routers: every call really tries the refused primary (its circuit never opens),
    # with the default retry (1, jittered backoff) and with retries off; and one whose primary
    # circuit is open.
    refusing = ModelRouter([dead, live], failure_threshold=10**9)
    refusing_no_retry = ModelRouter(
        [dead.model_copy(update={"retries": 0}), live], failure_threshold=10**9
    )
    circuit_open = ModelRouter([dead, live], failure_threshold=1, cooldown_s=3600)
    rows: list[tuple[str, str, list[float]]] = []
    try:

        async def raw() -> Any:
            return await client.chat.completions.create(model="bench-model", messages=messages)  # type: ignore[arg-type]

        async def lite() -> Any:
            return await litellm.acompletion(
                model="openai/bench-model", api_base=url, api_key="x", messages=messages
            )

        complete = {
            "raw openai": raw,
            "router": lambda: router.complete(request),
            "litellm": lite,
        }
        for label, samples in (await interleaved(complete, calls)).items():
            rows.append(("complete, sequential", label, samples))
        cpu_complete = {label: CPU_SAMPLES.pop(label)[-calls:] for label in complete}
        for label, samples in (await interleaved_concurrent(complete, calls, callers)).items():
            rows.append((f"complete, {callers} concurrent callers", label, samples))

        ttft: dict[str, list[float]] = {"raw openai": [], "router": [], "litellm": []}

        async def raw_stream() -> None:
            began = time.perf_counter()
            chunks = await client.chat.completions.create(
                model="bench-model",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
            )
            first = 0.0
            async for chunk in chunks:  # type: ignore[union-attr]
                if not first and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - began
            ttft["raw openai"].append(first)

        async def router_stream() -> None:
            began = time.perf_counter()
            first = 0.0
            async for event in router.stream(stream_request):
                if not first and isinstance(event, ContentDelta):
                    first = time.perf_counter() - began
            ttft["router"].append(first)

        async def lite_stream() -> None:
            began = time.perf_counter()
            chunks = await litellm.acompletion(
                model="openai/bench-model", api_base=url, api_key="x", messages=messages,
                stream=True,
            )  # fmt: skip
            first = 0.0
            async for chunk in chunks:
                if not first and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - began
            ttft["litellm"].append(first)

        streams = {"raw openai": raw_stream, "router": router_stream, "litellm": lite_stream}
        await interleaved(streams, calls)
        cpu_stream = {label: CPU_SAMPLES.pop(label)[-calls:] for label in streams}
        for label, samples in ttft.items():
            rows.append(("stream, time to first token", label, samples[-calls:]))

        await circuit_open.complete(request)  # one refused call opens the primary's circuit
        fallback = {
            "healthy": lambda: router.complete(request),
            "refused": lambda: refusing.complete(request),
            "refused0": lambda: refusing_no_retry.complete(request),
            "open": lambda: circuit_open.complete(request),
        }
        measured = await interleaved(fallback, calls)
        rows.append(("fallback: primary healthy (reference)", "router", measured["healthy"]))
        rows.append(("fallback: primary refuses, retries=1", "router", measured["refused"]))
        rows.append(("fallback: primary refuses, retries=0", "router", measured["refused0"]))
        rows.append(("fallback: primary circuit open", "router", measured["open"]))
    finally:
        await client.close()
        for each in (router, refusing, refusing_no_retry, circuit_open):
            await each.aclose()
        server.terminate()
        server.wait(timeout=10)
    print_table(rows, calls)
    print(
        "\nclient CPU per call (ms of this process's CPU time, median; the server is elsewhere)\n"
    )
    print(f"{'scenario':<42} {'raw openai':>11} {'router':>11} {'litellm':>11}")
    for scenario, cpu in [("complete, sequential", cpu_complete),
                          ("stream, to the end", cpu_stream)]:  # fmt: skip
        cells = " ".join(f"{statistics.median(cpu[label]) * 1000:11.3f}" for label in cpu)
        print(f"{scenario:<42} {cells}")


def print_table(rows: list[tuple[str, str, list[float]]], calls: int) -> None:
    reference: dict[str, float] = {}
    for scenario, label, samples in rows:
        if label == "raw openai" or scenario.startswith("fallback: primary healthy"):
            reference[scenario.split(":")[0]] = stats(samples)[0]
    print(f"\nrouter benchmark: {calls} calls per row, loopback canned server, times in ms\n")
    print(f"{'scenario':<42} {'client':<11} {'median':>8} {'p99':>8} {'added':>8}")
    print("-" * 81)
    for scenario, label, samples in rows:
        median, p99 = stats(samples)
        base = reference.get(scenario.split(":")[0])
        added = "" if base is None or median == base else f"{median - base:+8.3f}"
        print(f"{scenario:<42} {label:<11} {median:8.3f} {p99:8.3f} {added:>8}")
    print("\nadded: median minus the raw openai client's median in the same scenario; for the")
    print("fallback rows, minus the router with a healthy primary. Calls of all variants are")
    print("interleaved round by round so background load affects them alike.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        import uvicorn

        uvicorn.run(canned_app, host="127.0.0.1", port=arguments.serve, log_level="warning",
                    access_log=False, lifespan="off")  # fmt: skip
    else:
        asyncio.run(main(arguments.calls, arguments.concurrency))
