"""MCP tool-call round trip through the hub vs. a direct Python call of the same tool.

Run: uv run python bench/mcp_hub_bench.py [--calls 500]

The hub runs as a real `anvyl-mcp-hub serve` subprocess (auth on, audit logging on) in each
transport mode; the client is the SDK's streamable-HTTP client with one session reused.
"""

import argparse
import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import httpx2
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from rich.console import Console
from rich.table import Table

from anvyl.mcp_hub.audit import configure_logging
from anvyl.mcp_hub.servers.infra import InfraTools, create_infra_server
from anvyl.mcp_hub.settings import HubSettings

TOKEN = "bench-token"
TOOLS = ("get_host_info", "get_host_resources")
MODES: dict[str, dict[str, str]] = {
    "stateful, SSE responses (default)": {},
    "stateful, JSON responses": {"ANVYL_MCP_HUB_JSON_RESPONSE": "true"},
    "stateless, JSON responses": {
        "ANVYL_MCP_HUB_STATELESS_HTTP": "true",
        "ANVYL_MCP_HUB_JSON_RESPONSE": "true",
    },
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_hub(extra_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANVYL_MCP_HUB_")}
    env.update(extra_env, ANVYL_MCP_HUB_TOKEN=TOKEN)
    process = subprocess.Popen(
        [sys.executable, "-m", "anvyl.mcp_hub", "serve", "--port", str(port), "--log-json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hub did not start")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def summarize(samples_s: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, statistics.fmean(ordered) * 1000


async def time_calls(call: Callable[[], Awaitable[Any]], calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await call()
    samples: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def bench_hub(base_url: str, tool: str, calls: int, warmup: int) -> list[float]:
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30.0)
        ) as http_client,
        streamable_http_client(f"{base_url}/infra/mcp", http_client=http_client) as streams,
        ClientSession(streams[0], streams[1], read_timeout_seconds=30) as session,
    ):
        await session.initialize()

        async def call() -> None:
            result = await session.call_tool(tool, {})
            if result.is_error or result.structured_content is None:
                raise RuntimeError(f"{tool} failed: {result.content}")

        return await time_calls(call, calls, warmup)


async def bench_in_process(tool: str, args: argparse.Namespace) -> list[float]:
    """The SDK's client and server joined by memory streams: MCP cost without HTTP."""
    server, _ = create_infra_server(HubSettings(_env_file=None))
    async with Client(server) as client:

        async def call() -> None:
            result = await client.call_tool(tool, {})
            if result.is_error:
                raise RuntimeError(f"{tool} failed: {result.content}")

        return await time_calls(call, args.calls, args.warmup)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    # Audit lines of the in-process server would flood the table; the hub logs to /dev/null.
    configure_logging(level=logging.WARNING)
    rows: list[tuple[str, str, list[float]]] = []
    tools = InfraTools(HubSettings(_env_file=None))
    for tool in TOOLS:
        function = getattr(tools, tool)
        rows.append(
            (tool, "direct Python call", await time_calls(function, args.calls, args.warmup))
        )
        rows.append((tool, "in-process SDK, no HTTP", await bench_in_process(tool, args)))
    for mode, env in MODES.items():
        with running_hub(env) as base_url:
            for tool in TOOLS:
                samples = await bench_hub(base_url, tool, args.calls, args.warmup)
                rows.append((tool, f"hub: {mode}", samples))

    table = Table(
        title=f"MCP tool call round trip, {args.calls} calls (one session, loopback, auth on)"
    )
    for column in ("tool", "path", "median ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="left" if column in ("tool", "path") else "right")
    for tool, path, samples in sorted(rows, key=lambda row: (row[0], row[1])):
        median, p99, mean = summarize(samples)
        table.add_row(tool, path, f"{median:.3f}", f"{p99:.3f}", f"{mean:.3f}")
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
