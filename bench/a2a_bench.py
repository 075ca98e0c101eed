"""What A2A adds to a task: the same task asked over POST /orchestrate, over A2A SendMessage with
the a2a-sdk's client, and with ask_a2a_agent (card + streaming message + final GetTask), in turn.

    uv run python bench/a2a_bench.py [--tasks 60]

One in-process orchestrator (SQLite, no repository: a one-turn answer of an instant scripted model
behind the real OpenAI wire protocol) served by uvicorn on a loopback port, so every way goes
through real HTTP. Each request is timed by the client; the overheads are the medians of the
paired differences against the POST /orchestrate beside them (which cancels the VM's drift). The
first round warms everything and is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import uvicorn
from a2a.client import ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest, TaskState

from agent_bench import pct
from anvyl.orchestrator.a2a.client import ask_a2a_agent
from anvyl.orchestrator.api.app import create_app
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from anvyl.orchestrator.settings import Settings

QUERY = "How is this host doing?"
ANSWER = "Fine."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def main(tasks: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="anvyl-a2a-bench-") as tmp,
        ScriptedLLMServer(default=ScriptedReply(content=ANSWER)) as model,
    ):
        root = Path(tmp)
        config = root / "anvyl.yaml"
        config.write_text(f"models:\n  - name: instant\n    provider: openai\n    base_url: {model.openai_url}\n"
                          "    model: instant\n    api_key: k\nrouting:\n  primary: instant\n")  # fmt: skip
        os.environ["ANVYL_CONFIG"] = str(config)
        app = create_app(Settings(data_dir=root / "data", workspace_backend="local",
                                  instance="a2abench", log_level="warning"))  # fmt: skip
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))  # fmt: skip
        serving = asyncio.create_task(server.serve())
        times: dict[str, list[float]] = {"orchestrate": [], "send": [], "ask": []}
        try:
            while not server.started:
                assert not serving.done(), "uvicorn stopped during start-up"
                await asyncio.sleep(0.02)
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                client = await ClientFactory(
                    ClientConfig(httpx_client=http, streaming=False)
                ).create_from_url(url)

                async def orchestrate() -> None:
                    answer = (await http.post("/orchestrate", json={"query": QUERY})).json()
                    assert answer["status"] == "succeeded" and answer["result"] == ANSWER, answer

                async def send() -> None:
                    request = SendMessageRequest(message=Message(
                        message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[Part(text=QUERY)]))  # fmt: skip
                    (answer,) = [r async for r in client.send_message(request)]
                    assert answer.task.status.state == TaskState.TASK_STATE_COMPLETED, answer

                async def ask() -> None:
                    assert await ask_a2a_agent(url, None, QUERY, timeout_s=30) == ANSWER

                ways = {"orchestrate": orchestrate, "send": send, "ask": ask}
                for index in range(tasks + 1):
                    order = list(ways)[index % 3 :] + list(ways)[: index % 3]  # rotate who is first
                    for name in order:
                        began = time.perf_counter()
                        await ways[name]()
                        if index:
                            times[name].append(time.perf_counter() - began)
                await client.close()
        finally:
            server.should_exit = True
            await serving
    ms = lambda v: f"{v * 1000:9.2f}"  # noqa: E731
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nA2A vs POST /orchestrate: {tasks} rounds, one-turn task, instant scripted model, "
          f"loopback HTTP, {os.cpu_count()} CPUs, load average {load}\n")  # fmt: skip
    print(f"| {'measure':52} | {'median ms':>9} | {'p95 ms':>9} |")
    print(f"|{'-' * 54}|{'-' * 11}|{'-' * 11}|")
    paired = lambda name: [a - o for a, o in zip(times[name], times["orchestrate"], strict=True)]  # noqa: E731
    rows = [
        ("POST /orchestrate (sync)", times["orchestrate"]),
        ("A2A SendMessage (a2a-sdk client, blocking)", times["send"]),
        ("ask_a2a_agent (card, then the task streamed)", times["ask"]),
        ("SendMessage overhead (paired: send - orchestrate)", paired("send")),
        ("ask_a2a_agent overhead (paired: ask - orchestrate)", paired("ask")),
    ]
    for name, values in rows:
        print(f"| {name:52} | {ms(statistics.median(values))} | {ms(pct(values, 0.95))} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=60)
    asyncio.run(main(parser.parse_args().tasks))
