"""What a named agent adds: POST /agents/{name}/act against POST /orchestrate, the same task, interleaved.

    uv run python bench/agent_act_bench.py [--tasks 60] [--task answer|agent-bench] [--backend local|docker]

One in-process orchestrator (SQLite, a real worker, a real scripted OpenAI-wire model server) runs
the same task on the same repository both ways, in turn: `answer` (default: one model turn, no
tool, so what the route adds is not lost in the tools' noise) or `agent-bench` (agent_bench.py's
task: 5 model turns, 8 tool calls). The two ways: POST /orchestrate with the configured model, and
POST /agents/bench-agent/act with an agent whose profile points at the same scripted model. Each request is timed by the client (sync mode: the whole
task; the two alternate which goes first). The overhead is the median of the paired differences
(act minus the orchestrate beside it), which cancels the VM's drift; the first pair warms both
workspaces and is not counted.
Target: under 2 ms median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from agent_bench import make_repo, pct, remove_containers, script
from anvyl.orchestrator.api.app import create_app
from anvyl.orchestrator.llm.testing import ScriptedLLMServer, ScriptedReply
from anvyl.orchestrator.settings import Settings

INSTANCE = "agentactbench"
QUERY = "look around"

TASKS = {  # name -> (the model's replies, (model calls, tool calls) the task makes)
    "answer": (lambda: [ScriptedReply(content="Nothing to do.")], (1, 0)),
    "agent-bench": (script, (5, 8)),
}


async def timed(http: httpx.AsyncClient, path: str, body: dict[str, object],
                calls: tuple[int, int]) -> float:  # fmt: skip
    began = time.perf_counter()
    response = await http.post(path, json=body)
    elapsed = time.perf_counter() - began
    task = response.json()
    assert response.status_code == 200 and task["status"] == "succeeded", task
    made = (len(task["metadata"]["model_calls"]), len(task["metadata"]["tool_calls"]))
    assert made == calls, (made, calls)
    return elapsed


async def main(tasks: int, which: str, backend: str) -> None:
    replies, calls = TASKS[which]
    with (
        tempfile.TemporaryDirectory(prefix="anvyl-agent-act-bench-") as tmp,
        ScriptedLLMServer() as model,
    ):
        root = Path(tmp)
        repo = make_repo(root)
        config = root / "anvyl.yaml"
        config.write_text(f"models:\n  - name: instant\n    provider: openai\n    base_url: {model.openai_url}\n"
                          "    model: instant\n    api_key: k\nrouting:\n  primary: instant\n")  # fmt: skip
        os.environ["ANVYL_CONFIG"] = str(config)
        settings = Settings(data_dir=root / "data", workspace_backend=backend, instance=INSTANCE,
                            log_level="warning")  # fmt: skip
        app = create_app(settings)
        orchestrated: list[float] = []
        acted: list[float] = []
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                  timeout=120) as http,
            ):  # fmt: skip
                profile = {"name": "bench-agent", "provider": "lmstudio", "model": "instant",
                           "provider_host": "127.0.0.1", "provider_port": model.port,
                           "repo_url": str(repo), "auto_start": True}  # fmt: skip
                created = await http.post("/agents", json=profile)
                assert created.status_code == 201, created.text
                for index in range(tasks + 1):  # the first pair warms both workspaces
                    # Alternate which goes first, so neither always runs on the warmer VM.
                    routes = [("/orchestrate", {"query": QUERY, "repo_url": str(repo)}),
                              ("/agents/bench-agent/act", {"query": QUERY})]  # fmt: skip
                    times = {}
                    for path, body in routes if index % 2 else reversed(routes):
                        model.push(*replies())
                        times[path] = await timed(http, path, body, calls)
                    orchestrate_s, act_s = times["/orchestrate"], times["/agents/bench-agent/act"]
                    if index:
                        orchestrated.append(orchestrate_s)
                        acted.append(act_s)
                removed = await http.delete(
                    "/agents/bench-agent", params={"force": "true", "purge": "true"}
                )
                assert removed.status_code == 204, removed.text
        finally:
            if backend == "docker":
                remove_containers(INSTANCE)
    differences = [a - o for a, o in zip(acted, orchestrated, strict=True)]
    ms = lambda v: f"{v * 1000:9.2f}"  # noqa: E731
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nagent act vs orchestrate: {tasks} pairs of task {which} ({calls[0]} model turns, {calls[1]} tool calls), backend={backend}, "
          f"instant scripted model, {os.cpu_count()} CPUs, load average {load}\n")  # fmt: skip
    print(f"| {'measure':44} | {'median ms':>9} | {'p95 ms':>9} | target          |")
    print(f"|{'-' * 46}|{'-' * 11}|{'-' * 11}|-----------------|")
    rows = [
        ("POST /orchestrate (sync, whole task)", orchestrated, ""),
        ("POST /agents/{name}/act (sync, whole task)", acted, ""),
        ("act overhead (paired: act - orchestrate)", differences, "< 2 ms median"),
    ]
    for name, values, target in rows:
        print(
            f"| {name:44} | {ms(statistics.median(values))} | {ms(pct(values, 0.95))} | {target:15} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--task", choices=sorted(TASKS), default="answer")
    parser.add_argument("--backend", choices=["local", "docker"], default="local")
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.task, args.backend))
