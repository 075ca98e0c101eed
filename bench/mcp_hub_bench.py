"""MCP tool-call round trip through the hub vs. a direct Python call of the same tool.

Run: uv run python bench/mcp_hub_bench.py [--calls 500]

The hub runs as a real `anvyl-mcp-hub serve` subprocess (auth on, audit logging on) in each
transport mode; the client is the SDK's streamable-HTTP client with one session reused.
"""

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from pathlib import Path

import httpx2
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from rich.console import Console
from rich.table import Table

from anvyl.mcp_hub.audit import configure_logging
from anvyl.mcp_hub.servers import SERVERS
from anvyl.mcp_hub.servers.infra import InfraTools
from anvyl.mcp_hub.settings import HubSettings
from common import free_port, serving_process

TOKEN = "bench-token"
TOOLS = ("get_host_info", "get_host_resources")
MODES: dict[str, dict[str, str]] = {
    "stateful, SSE responses": {"ANVYL_MCP_HUB_JSON_RESPONSE": "false"},
    "stateful, JSON responses (default)": {"ANVYL_MCP_HUB_JSON_RESPONSE": "true"},
    "stateless, JSON responses": {
        "ANVYL_MCP_HUB_STATELESS_HTTP": "true",
        "ANVYL_MCP_HUB_JSON_RESPONSE": "true",
    },
}


@contextmanager
def running_hub(extra_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANVYL_MCP_HUB_")}
    env.update(extra_env, ANVYL_MCP_HUB_TOKEN=TOKEN)
    base_url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "anvyl.mcp_hub", "serve", "--port", str(port), "--log-json"]
    with (
        tempfile.TemporaryDirectory(prefix="anvyl-hub-bench-") as tmp,
        serving_process(argv, f"{base_url}/health", Path(tmp) / "hub.log", env=env, timeout_s=30),
    ):
        yield base_url


def summarize(samples_s: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, statistics.fmean(ordered) * 1000


ToolCall = Callable[[str], Awaitable[None]]


async def hub_session(stack: AsyncExitStack, base_url: str) -> ToolCall:
    """One SDK streamable-HTTP session to the hub's infra server, reused for every call."""
    http_client = await stack.enter_async_context(
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30.0)
        )
    )
    streams = await stack.enter_async_context(
        streamable_http_client(f"{base_url}/infra/mcp", http_client=http_client)
    )
    session = await stack.enter_async_context(
        ClientSession(streams[0], streams[1], read_timeout_seconds=30)
    )
    await session.initialize()

    async def call(tool: str) -> None:
        result = await session.call_tool(tool, {})
        if result.is_error or result.structured_content is None:
            raise RuntimeError(f"{tool} failed: {result.content}")

    return call


async def in_process_session(stack: AsyncExitStack) -> ToolCall:
    """The SDK's client and server joined by memory streams: MCP cost without HTTP."""
    infra = next(entry for entry in SERVERS if entry.name == "infra")
    server, _ = infra.create(HubSettings(_env_file=None))
    client = await stack.enter_async_context(Client(server))

    async def call(tool: str) -> None:
        result = await client.call_tool(tool, {})
        if result.is_error:
            raise RuntimeError(f"{tool} failed: {result.content}")

    return call


async def health_calls(stack: AsyncExitStack, base_url: str) -> ToolCall:
    """What one loopback HTTP round trip costs here, without MCP: the transport's floor."""
    http_client = await stack.enter_async_context(httpx2.AsyncClient(timeout=10.0))

    async def call(tool: str) -> None:
        (await http_client.get(f"{base_url}/health")).raise_for_status()

    return call


def direct_calls() -> ToolCall:
    tools = InfraTools(HubSettings(_env_file=None))

    async def call(tool: str) -> None:
        await getattr(tools, tool)()

    return call


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    # Audit lines of the in-process server would flood the table; the hubs log to /dev/null.
    configure_logging(level=logging.WARNING)
    with ExitStack() as processes:
        async with AsyncExitStack() as sessions:
            paths: dict[str, ToolCall] = {
                "direct Python call": direct_calls(),
                "in-process SDK, no HTTP": await in_process_session(sessions),
            }
            for mode, env in MODES.items():
                base_url = processes.enter_context(running_hub(env))
                paths[f"hub: {mode}"] = await hub_session(sessions, base_url)
            paths["bare HTTP GET /health (floor)"] = await health_calls(sessions, base_url)

            samples: dict[tuple[str, str], list[float]] = {
                (tool, path): [] for tool in TOOLS for path in paths
            }
            # Round-robin over every path, so load from other processes on a shared machine
            # lands on all of them alike instead of skewing whichever ran at that moment.
            for iteration in range(args.warmup + args.calls):
                for tool in TOOLS:
                    for path, call in paths.items():
                        started = time.perf_counter()
                        await call(tool)
                        if iteration >= args.warmup:
                            samples[(tool, path)].append(time.perf_counter() - started)

    table = Table(
        title=f"MCP tool call round trip, {args.calls} calls each, interleaved "
        f"(one session per path, loopback, auth on, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f})"
    )
    for column in ("tool", "path", "median ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="left" if column in ("tool", "path") else "right")
    for (tool, path), tool_samples in samples.items():
        median, p99, mean = summarize(tool_samples)
        table.add_row(tool, path, f"{median:.3f}", f"{p99:.3f}", f"{mean:.3f}")
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
